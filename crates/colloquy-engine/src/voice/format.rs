//! The audio formats of the conversation protocol (`pcm_8000` … `pcm_48000`, `ulaw_8000`):
//! 16-bit little-endian mono PCM at a rate, or 8 kHz G.711 µ-law. Audio inside Colloquy is
//! always 16-bit mono samples at a known rate; this module turns the wire bytes into those
//! samples and back, and resamples between rates.

use audio_codec_algorithms::{decode_ulaw, encode_ulaw};
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Async, FixedAsync, Resampler, SincInterpolationParameters, WindowFunction};

/// The formats the reference names for `asr.user_input_audio_format` and
/// `tts.agent_output_audio_format`.
pub const FORMATS: [&str; 8] = [
    "pcm_8000",
    "pcm_16000",
    "pcm_22050",
    "pcm_24000",
    "pcm_32000",
    "pcm_44100",
    "pcm_48000",
    "ulaw_8000",
];

/// One wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioFormat {
    /// 16-bit little-endian mono PCM at this many samples a second.
    Pcm(u32),
    /// 8 kHz G.711 µ-law, one byte a sample.
    Ulaw8000,
}

impl AudioFormat {
    /// The format a reference name stands for; `None` for names outside [`FORMATS`].
    pub fn parse(name: &str) -> Option<AudioFormat> {
        if !FORMATS.contains(&name) {
            return None;
        }
        if name == "ulaw_8000" {
            return Some(AudioFormat::Ulaw8000);
        }
        name.strip_prefix("pcm_")?.parse().ok().map(AudioFormat::Pcm)
    }

    /// Its reference name.
    pub fn name(self) -> String {
        match self {
            AudioFormat::Pcm(rate) => format!("pcm_{rate}"),
            AudioFormat::Ulaw8000 => "ulaw_8000".into(),
        }
    }

    /// Samples a second.
    pub fn rate(self) -> u32 {
        match self {
            AudioFormat::Pcm(rate) => rate,
            AudioFormat::Ulaw8000 => 8000,
        }
    }

    /// The samples of wire bytes (a trailing odd byte of PCM is dropped).
    pub fn decode(self, bytes: &[u8]) -> Vec<i16> {
        match self {
            AudioFormat::Pcm(_) => {
                bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
            }
            AudioFormat::Ulaw8000 => bytes.iter().map(|b| decode_ulaw(*b)).collect(),
        }
    }

    /// The wire bytes of samples.
    pub fn encode(self, samples: &[i16]) -> Vec<u8> {
        match self {
            AudioFormat::Pcm(_) => samples.iter().flat_map(|s| s.to_le_bytes()).collect(),
            AudioFormat::Ulaw8000 => samples.iter().map(|s| encode_ulaw(*s)).collect(),
        }
    }

    /// Milliseconds of audio in `samples`.
    pub fn millis(self, samples: usize) -> u64 {
        samples as u64 * 1000 / u64::from(self.rate())
    }
}

/// `samples` at `from` Hz, resampled to `to` Hz with a windowed-sinc filter (band-limited, so
/// going down does not alias).
pub fn resample(samples: &[i16], from: u32, to: u32) -> Vec<i16> {
    if from == to || samples.is_empty() || from == 0 || to == 0 {
        return samples.to_vec();
    }
    let input: Vec<f32> = samples.iter().map(|s| f32::from(*s) / 32768.0).collect();
    let params = SincInterpolationParameters::new(64, WindowFunction::BlackmanHarris2);
    let ratio = f64::from(to) / f64::from(from);
    let Ok(mut resampler) = Async::<f32>::new_sinc(ratio, 1.0, &params, 1024, 1, FixedAsync::Input)
    else {
        return samples.to_vec();
    };
    let needed = resampler.process_all_needed_output_len(input.len());
    let mut output = vec![0.0f32; needed];
    let (Ok(adapter_in), Ok(mut adapter_out)) = (
        InterleavedSlice::new(&input, 1, input.len()),
        InterleavedSlice::new_mut(&mut output, 1, needed),
    ) else {
        return samples.to_vec();
    };
    match resampler.process_all_into_buffer(&adapter_in, &mut adapter_out, input.len(), None) {
        Ok((_, produced)) => output[..produced]
            .iter()
            .map(|s| (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16)
            .collect(),
        Err(_) => samples.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tone of `freq` Hz lasting `millis` ms at `rate`.
    fn tone(freq: f64, millis: u32, rate: u32) -> Vec<i16> {
        let n = rate as usize * millis as usize / 1000;
        (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                (0.5 * 32767.0 * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16
            })
            .collect()
    }

    /// The frequency of a tone, from its zero crossings.
    fn frequency(samples: &[i16], rate: u32) -> f64 {
        let crossings = samples.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
        crossings as f64 / 2.0 / (samples.len() as f64 / f64::from(rate))
    }

    #[test]
    fn every_format_round_trips_a_tone_through_the_codec_and_the_resampler() {
        for name in FORMATS {
            let format = AudioFormat::parse(name).expect("a known format");
            assert_eq!(format.name(), name);
            let original = tone(440.0, 500, 16_000);
            let wire = format.encode(&resample(&original, 16_000, format.rate()));
            let back = resample(&format.decode(&wire), format.rate(), 16_000);
            let millis = AudioFormat::Pcm(16_000).millis(back.len());
            assert!((490..=510).contains(&millis), "{name}: {millis} ms");
            let freq = frequency(&back, 16_000);
            assert!((freq - 440.0).abs() < 5.0, "{name}: {freq} Hz");
        }
    }

    #[test]
    fn names_outside_the_reference_are_refused() {
        for bad in ["pcm_11025", "ulaw_16000", "mp3_44100_128", "pcm_", ""] {
            assert_eq!(AudioFormat::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn odd_pcm_bytes_are_dropped_not_misread() {
        assert_eq!(AudioFormat::Pcm(16_000).decode(&[1, 0, 7]), vec![1]);
    }
}
