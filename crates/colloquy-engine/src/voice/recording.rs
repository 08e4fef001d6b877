//! A voice conversation's recording: the user's audio and the agent's, each on its own track
//! at its own rate as it happens (appending costs a copy, nothing more), mixed and encoded to
//! MP3 once the conversation is over, the format the reference serves recordings in.
//!
//! Each piece is placed at the time it happened: the user's audio at its arrival (or right
//! after the previous piece, for a client that sends faster than real time), the agent's at
//! the time the client starts playing it.

use std::time::Instant;

use rusty_mp3::{Mp3Encoder, Mp3EncoderConfig};

use super::format::resample;

/// Rate of the recording.
const RATE: u32 = 16_000;
/// Bit rate of the MP3 file (mono speech at 16 kHz).
const KBPS: u32 = 32;

/// One side of the conversation.
#[derive(Debug)]
struct Track {
    rate: u32,
    samples: Vec<i16>,
    /// Where the next piece may start.
    cursor: usize,
    max_samples: usize,
}

impl Track {
    fn new(rate: u32, max_secs: u64) -> Track {
        Track {
            rate,
            samples: Vec::new(),
            cursor: 0,
            max_samples: (max_secs * u64::from(rate)) as usize,
        }
    }

    /// Puts `samples` at `at_ms` into the conversation, or right after the previous piece.
    fn put(&mut self, at_ms: u64, samples: &[i16]) {
        let at = ((at_ms * u64::from(self.rate) / 1000) as usize).max(self.cursor);
        let end = (at + samples.len()).min(self.max_samples);
        if end <= at {
            return;
        }
        if self.samples.len() < end {
            self.samples.resize(end, 0);
        }
        self.samples[at..end].copy_from_slice(&samples[..end - at]);
        self.cursor = end;
    }
}

/// A conversation's recording in the making.
#[derive(Debug)]
pub struct Recording {
    started: Instant,
    user: Track,
    agent: Track,
}

/// A finished recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The MP3 file.
    pub mp3: Vec<u8>,
    /// The user's voice is in it.
    pub has_user_audio: bool,
    /// The agent's voice is in it.
    pub has_response_audio: bool,
}

impl Recording {
    /// A recording of user audio at `user_rate` and agent audio at `agent_rate`, at most
    /// `max_secs` long.
    pub fn new(user_rate: u32, agent_rate: u32, max_secs: u64) -> Recording {
        Recording {
            started: Instant::now(),
            user: Track::new(user_rate, max_secs),
            agent: Track::new(agent_rate, max_secs),
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The user's audio, just received.
    pub fn user(&mut self, samples: &[i16]) {
        let length_ms = samples.len() as u64 * 1000 / u64::from(self.user.rate);
        let at = self.now_ms().saturating_sub(length_ms);
        self.user.put(at, samples);
    }

    /// The agent's audio, played from now on (or after what it already said).
    pub fn agent(&mut self, samples: &[i16]) {
        let at = self.now_ms();
        self.agent.put(at, samples);
    }

    /// The agent's audio after an interruption: what was not played is cut.
    pub fn cut_agent(&mut self) {
        let now = (self.now_ms() * u64::from(self.agent.rate) / 1000) as usize;
        if now < self.agent.samples.len() {
            self.agent.samples.truncate(now);
            self.agent.cursor = now;
        }
    }

    /// Both sides mixed into one MP3 file; `None` when nothing was said.
    pub fn finish(self) -> Option<Recorded> {
        let has_user_audio = self.user.samples.iter().any(|s| *s != 0);
        let has_response_audio = self.agent.samples.iter().any(|s| *s != 0);
        if !has_user_audio && !has_response_audio {
            return None;
        }
        let user = resample(&self.user.samples, self.user.rate, RATE);
        let agent = resample(&self.agent.samples, self.agent.rate, RATE);
        let mut mixed = vec![0i16; user.len().max(agent.len())];
        for (i, s) in mixed.iter_mut().enumerate() {
            let sum = i32::from(user.get(i).copied().unwrap_or(0))
                + i32::from(agent.get(i).copied().unwrap_or(0));
            *s = sum.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
        }
        Some(Recorded { mp3: encode_mp3(&mixed), has_user_audio, has_response_audio })
    }
}

/// Mono 16 kHz samples as an MP3 file.
fn encode_mp3(samples: &[i16]) -> Vec<u8> {
    let mut encoder = Mp3Encoder::new(Mp3EncoderConfig { bitrate_kbps: KBPS, vbr_quality: None });
    let mut out = Vec::with_capacity(samples.len() / 4);
    // 16 kHz is one of the rates MPEG-2 Layer III has, so the push cannot be refused.
    if encoder.push_pcm_s16(samples, 1, RATE).is_err() {
        return out;
    }
    encoder.finish();
    while let Ok(packet) = encoder.next_packet() {
        out.extend_from_slice(&packet);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(ms: u32, rate: u32) -> Vec<i16> {
        (0..rate * ms / 1000)
            .map(|i| {
                (8000.0
                    * (2.0 * std::f64::consts::PI * 440.0 * f64::from(i) / f64::from(rate)).sin())
                    as i16
            })
            .collect()
    }

    #[test]
    fn both_sides_become_one_mp3_file_of_their_length() {
        let mut r = Recording::new(8000, 22_050, 600);
        r.user(&tone(500, 8000));
        r.user(&tone(500, 8000));
        r.agent(&tone(700, 22_050));
        let recorded = r.finish().expect("a recording");
        assert!(recorded.has_user_audio && recorded.has_response_audio);
        let mut decoder = rusty_mp3::Mp3Decoder::new();
        decoder.push(&recorded.mp3);
        decoder.flush();
        let mut samples = 0;
        while let Ok(frame) = decoder.next_frame() {
            assert_eq!((frame.sample_rate, frame.channels), (16_000, 1));
            samples += frame.samples.len();
        }
        let ms = samples as u64 * 1000 / 16_000;
        // The user's second of audio, the agent's speech over it; the codec pads a frame.
        assert!((1000..=1200).contains(&ms), "{ms} ms");
    }

    #[test]
    fn silence_is_no_recording_and_the_length_is_capped() {
        assert_eq!(Recording::new(16_000, 16_000, 600).finish(), None);
        let mut r = Recording::new(16_000, 16_000, 1);
        r.user(&tone(3000, 16_000));
        assert_eq!(r.user.samples.len(), 16_000);
    }
}
