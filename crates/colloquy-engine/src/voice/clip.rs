//! An uploaded audio clip (an agent's hold audio) read into mono samples: WAV through hound,
//! MP3 through rusty_mp3's decoder (the same crate encodes recordings).

use super::wav;

/// The clip's mono samples and their rate.
pub fn decode(bytes: &[u8]) -> Result<(Vec<i16>, u32), String> {
    if bytes.starts_with(b"RIFF") {
        return wav::decode(bytes).map_err(|e| e.to_string());
    }
    let mut decoder = rusty_mp3::Mp3Decoder::new();
    decoder.push(bytes);
    decoder.flush();
    let (mut mono, mut rate) = (Vec::new(), 0);
    while let Ok(frame) = decoder.next_frame() {
        let channels = usize::from(frame.channels.max(1));
        rate = frame.sample_rate;
        mono.extend(frame.samples.chunks(channels).map(|f| {
            let mean = f.iter().sum::<f32>() / f.len() as f32;
            (mean.clamp(-1.0, 1.0) * f32::from(i16::MAX)) as i16
        }));
    }
    if mono.is_empty() || rate == 0 {
        return Err("the file holds neither WAV nor MP3 audio".into());
    }
    Ok((mono, rate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_and_mp3_clips_decode_to_mono() {
        let tone: Vec<i16> =
            (0..16_000).map(|i| ((i as f32 * 0.1).sin() * 8000.0) as i16).collect();
        let (samples, rate) = decode(&wav::encode(&tone, 16_000)).unwrap();
        assert_eq!((samples.len(), rate), (16_000, 16_000));

        let mut recording = super::super::recording::Recording::new(16_000, 16_000, 10);
        recording.agent(&tone);
        let mp3 = recording.finish().unwrap().mp3;
        let (samples, rate) = decode(&mp3).unwrap();
        assert_eq!(rate, 16_000);
        assert!((samples.len() as i64 - 16_000).abs() < 2_000, "{}", samples.len());
        assert!(samples.iter().any(|s| s.unsigned_abs() > 1000), "the tone is heard");

        assert!(decode(b"neither").is_err());
    }
}
