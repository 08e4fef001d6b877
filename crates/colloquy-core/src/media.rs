//! What an uploaded audio file is and how long it plays, read from its bytes: WAV (its
//! header) and MP3 (its frames, as players count them), the two formats hold audio takes.

/// An audio file's type and length.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioInfo {
    /// `audio/wav` or `audio/mpeg`.
    pub mime_type: &'static str,
    /// Seconds it plays.
    pub duration_secs: f64,
}

/// Reads a WAV or MP3 file; `None` when it is neither (or has no audio).
pub fn audio_info(bytes: &[u8]) -> Option<AudioInfo> {
    if bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WAVE") {
        return wav_duration(bytes)
            .map(|duration_secs| AudioInfo { mime_type: "audio/wav", duration_secs });
    }
    mp3_duration(bytes).map(|duration_secs| AudioInfo { mime_type: "audio/mpeg", duration_secs })
}

/// The name of a file's content in the URL it is served at: the first 96 bits of its
/// SHA-256, in hex.
pub fn content_id(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref()[..12].iter().map(|b| format!("{b:02x}")).collect()
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// The data chunk's size over the format chunk's byte rate.
fn wav_duration(bytes: &[u8]) -> Option<f64> {
    let (mut at, mut byte_rate, mut data) = (12, None, None);
    while at + 8 <= bytes.len() {
        let size = u32_at(bytes, at + 4)? as usize;
        match &bytes[at..at + 4] {
            b"fmt " => byte_rate = u32_at(bytes, at + 16),
            b"data" => data = Some(size.min(bytes.len() - at - 8)),
            _ => {}
        }
        at += 8 + size + size % 2;
    }
    let (rate, data) = (byte_rate.filter(|r| *r > 0)?, data.filter(|d| *d > 0)?);
    Some(data as f64 / f64::from(rate))
}

/// Counts MPEG audio Layer III frames (after an ID3v2 tag, if any); needs at least two in a
/// row to call it MP3.
fn mp3_duration(bytes: &[u8]) -> Option<f64> {
    let mut at = 0;
    if bytes.starts_with(b"ID3") && bytes.len() >= 10 {
        let size = bytes[6..10].iter().fold(0usize, |n, b| (n << 7) | usize::from(b & 0x7f));
        at = 10 + size;
    }
    let (mut frames, mut seconds) = (0u32, 0f64);
    while let Some((length, samples, rate)) = bytes.get(at..at + 4).and_then(frame_header) {
        frames += 1;
        seconds += f64::from(samples) / f64::from(rate);
        at += length;
    }
    (frames >= 2).then_some(seconds)
}

/// A Layer III frame header: (frame length, samples in the frame, sample rate).
fn frame_header(h: &[u8]) -> Option<(usize, u32, u32)> {
    if h[0] != 0xff || h[1] & 0xe0 != 0xe0 || (h[1] >> 1) & 0b11 != 0b01 {
        return None;
    }
    let version = (h[1] >> 3) & 0b11; // 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5
    let mpeg1 = version == 3;
    const MPEG1: [u32; 15] = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320];
    const MPEG2: [u32; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
    let bitrate = *(if mpeg1 { &MPEG1 } else { &MPEG2 }).get(usize::from(h[2] >> 4))?;
    let base: u32 = *[44_100, 48_000, 32_000].get(usize::from((h[2] >> 2) & 0b11))?;
    let rate = match version {
        3 => base,
        2 => base / 2,
        0 => base / 4,
        _ => return None,
    };
    if bitrate == 0 {
        return None;
    }
    let padding = usize::from((h[2] >> 1) & 1);
    let (coefficient, samples) = if mpeg1 { (144, 1152) } else { (72, 576) };
    let length = (coefficient * bitrate * 1000 / rate) as usize + padding;
    Some((length, samples, rate))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(seconds: u32, rate: u32) -> Vec<u8> {
        let data = vec![0u8; (seconds * rate * 2) as usize];
        let mut out = b"RIFF".to_vec();
        out.extend((36 + data.len() as u32).to_le_bytes());
        out.extend(b"WAVEfmt ");
        out.extend(16u32.to_le_bytes());
        out.extend(1u16.to_le_bytes()); // PCM
        out.extend(1u16.to_le_bytes()); // mono
        out.extend(rate.to_le_bytes());
        out.extend((rate * 2).to_le_bytes());
        out.extend(2u16.to_le_bytes());
        out.extend(16u16.to_le_bytes());
        out.extend(b"data");
        out.extend((data.len() as u32).to_le_bytes());
        out.extend(data);
        out
    }

    /// `count` silent MPEG-1 Layer III frames at 128 kb/s, 44.1 kHz (417 bytes each).
    fn mp3(count: usize) -> Vec<u8> {
        let mut frame = vec![0u8; 417];
        frame[..4].copy_from_slice(&[0xff, 0xfb, 0x90, 0x00]);
        let mut out = b"ID3\x03\x00\x00\x00\x00\x00\x05hello".to_vec();
        for _ in 0..count {
            out.extend(&frame);
        }
        out
    }

    #[test]
    fn wav_and_mp3_durations_come_from_their_bytes() {
        let info = audio_info(&wav(3, 16_000)).unwrap();
        assert_eq!(info.mime_type, "audio/wav");
        assert!((info.duration_secs - 3.0).abs() < 1e-9);

        let info = audio_info(&mp3(100)).unwrap();
        assert_eq!(info.mime_type, "audio/mpeg");
        assert!((info.duration_secs - 100.0 * 1152.0 / 44_100.0).abs() < 1e-6, "{info:?}");

        assert_eq!(audio_info(b"not audio at all"), None);
        assert_eq!(audio_info(&mp3(1)), None, "one frame is not enough to be sure");
        assert_eq!(audio_info(&wav(0, 16_000)), None);
        assert_eq!(audio_info(b"RIFF\x04\x00\x00\x00WAVE"), None);
    }

    #[test]
    fn mpeg2_frames_count_half_as_many_samples() {
        // MPEG-2 Layer III, 64 kb/s, 22.05 kHz: 72 * 64000 / 22050 = 208 bytes a frame.
        let mut frame = vec![0u8; 208];
        frame[..4].copy_from_slice(&[0xff, 0xf3, 0x80, 0x00]);
        let file: Vec<u8> = frame.iter().copied().cycle().take(208 * 10).collect();
        let info = audio_info(&file).unwrap();
        assert!((info.duration_secs - 10.0 * 576.0 / 22_050.0).abs() < 1e-6, "{info:?}");
    }
}
