//! WAV files, the container speech servers take and give: one 16-bit mono file per utterance
//! to transcribe, and whatever a synthesizer returns read back into samples.

use std::io::Cursor;

/// Why a WAV file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("not a readable WAV file: {0}")]
pub struct WavError(#[from] hound::Error);

/// A 16-bit mono WAV file of `samples` at `rate` Hz.
pub fn encode(samples: &[i16], rate: u32) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = Cursor::new(Vec::with_capacity(44 + samples.len() * 2));
    // Writing to memory fails only on a header hound cannot express, which this spec is not.
    if let Ok(mut writer) = hound::WavWriter::new(&mut out, spec) {
        let mut pcm = writer.get_i16_writer(samples.len() as u32);
        for s in samples {
            pcm.write_sample(*s);
        }
        let _ = pcm.flush();
        let _ = writer.finalize();
    }
    out.into_inner()
}

/// The samples of a WAV file (any channel count, mixed down; 8 to 32-bit integer or float),
/// and its rate. A file whose header claims more data than it holds (a synthesizer that wrote
/// to a pipe and could not go back to fix the length) is read up to where its data ends.
pub fn decode(bytes: &[u8]) -> Result<(Vec<i16>, u32), WavError> {
    let reader = hound::WavReader::new(Cursor::new(bytes))?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader.into_samples::<f32>().map_while(Result::ok).collect(),
        hound::SampleFormat::Int => {
            let scale = 2f32.powi(i32::from(spec.bits_per_sample.clamp(1, 32)) - 1);
            reader.into_samples::<i32>().map_while(Result::ok).map(|s| s as f32 / scale).collect()
        }
    };
    let mono = interleaved
        .chunks(channels)
        .map(|frame| {
            let mean = frame.iter().sum::<f32>() / frame.len() as f32;
            (mean * 32768.0).round().clamp(-32768.0, 32767.0) as i16
        })
        .collect();
    Ok((mono, spec.sample_rate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_round_trips() {
        let samples: Vec<i16> = (0..1000).map(|i| (i * 31 % 2000 - 1000) as i16).collect();
        let (back, rate) = decode(&encode(&samples, 22_050)).expect("a WAV file");
        assert_eq!(rate, 22_050);
        assert_eq!(back, samples);
    }

    #[test]
    fn a_header_longer_than_its_data_reads_what_is_there() {
        let mut bytes = encode(&[100, 200, 300, 400], 8000);
        // The data chunk's length field claims far more than follows.
        bytes[40..44].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
        let (back, _) = decode(&bytes).expect("a WAV file");
        assert_eq!(back, vec![100, 200, 300, 400]);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode(b"RIFF....not a wave").is_err());
    }
}
