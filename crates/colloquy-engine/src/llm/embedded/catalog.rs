//! The models `colloquy models pull` knows: each pinned to one file at one revision by its
//! URL, size and SHA-256, so what runs is what was tested. Instruction-tuned, tool calling,
//! small enough for a laptop's CPU.

use std::path::{Path, PathBuf};

/// A model that can be pulled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownModel {
    /// The name to pull it by, and the model name it answers to.
    pub name: &'static str,
    /// What it is.
    pub description: &'static str,
    /// Where it is downloaded from (a fixed revision).
    pub url: &'static str,
    /// The file's name in the models directory.
    pub file: &'static str,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, hex.
    pub sha256: &'static str,
    /// Tokens of context it was trained for.
    pub context: u64,
}

/// What `colloquy models pull` with no name downloads.
pub const DEFAULT_MODEL: &str = "qwen2.5-1.5b-instruct";

/// The known models, the default first.
pub const MODELS: &[KnownModel] = &[KnownModel {
    name: DEFAULT_MODEL,
    description: "Qwen2.5 1.5B Instruct, Q4_K_M (Apache-2.0): calls tools, 1.1 GB, about 1.5 GB of memory loaded",
    url: "https://huggingface.co/Qwen/Qwen2.5-1.5B-Instruct-GGUF/resolve/91cad51170dc346986eccefdc2dd33a9da36ead9/qwen2.5-1.5b-instruct-q4_k_m.gguf",
    file: "qwen2.5-1.5b-instruct-q4_k_m.gguf",
    size: 1_117_320_736,
    sha256: "6a1a2eb6d15622bf3c96857206351ba97e1af16c30d7a74ee38970e434e9407e",
    context: 32_768,
}];

/// The known model called `name`.
pub fn find(name: &str) -> Option<&'static KnownModel> {
    MODELS.iter().find(|m| m.name == name)
}

/// A model file in the models directory (or named by `COLLOQUY_LOCAL_MODEL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalModel {
    /// The name agents and `/llm/list` use: the known model's, else the file's stem.
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
}

/// The complete model files in `dir` (downloads in progress end in `.part` and are left
/// out), known models first in catalogue order, then the others by name.
pub fn local_models(dir: &Path) -> Vec<LocalModel> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<LocalModel> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let path = entry.path();
            let file = path.file_name()?.to_str()?.to_owned();
            let stem = file.strip_suffix(".gguf")?;
            let size = entry.metadata().ok()?.len();
            let name = MODELS.iter().find(|m| m.file == file).map_or(stem, |m| m.name).to_owned();
            Some(LocalModel { name, path, size })
        })
        .collect();
    let rank =
        |m: &LocalModel| MODELS.iter().position(|k| k.name == m.name).unwrap_or(MODELS.len());
    found.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.name.cmp(&b.name)));
    found
}

/// The model `serve` runs when no provider is configured: `COLLOQUY_LOCAL_MODEL`'s file when
/// set, else the first model in the models directory.
pub fn default_local(explicit: Option<&Path>, dir: &Path) -> Option<LocalModel> {
    if let Some(path) = explicit {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("local");
        let file = path.file_name().and_then(|s| s.to_str()).unwrap_or_default();
        let name = MODELS.iter().find(|m| m.file == file).map_or(stem, |m| m.name);
        return Some(LocalModel { name: name.to_owned(), path: path.to_owned(), size });
    }
    local_models(dir).into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_lists_complete_models_known_first() {
        let dir = tempfile::tempdir().unwrap();
        for (file, bytes) in [
            ("zeta.gguf", 3),
            ("alpha.gguf", 2),
            ("qwen2.5-1.5b-instruct-q4_k_m.gguf", 5),
            ("half.gguf.part", 1),
            ("notes.txt", 1),
        ] {
            std::fs::write(dir.path().join(file), vec![0u8; bytes]).unwrap();
        }
        let names: Vec<(String, u64)> =
            local_models(dir.path()).into_iter().map(|m| (m.name, m.size)).collect();
        assert_eq!(names, [(DEFAULT_MODEL.into(), 5), ("alpha".into(), 2), ("zeta".into(), 3)]);
        assert_eq!(default_local(None, dir.path()).unwrap().name, DEFAULT_MODEL);
        let explicit = dir.path().join("alpha.gguf");
        assert_eq!(default_local(Some(&explicit), dir.path()).unwrap().name, "alpha");
        assert_eq!(default_local(None, &dir.path().join("missing")), None);
    }
}
