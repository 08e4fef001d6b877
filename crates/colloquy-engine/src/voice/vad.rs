//! Voice activity detection: which stretches of the user's audio are speech, so that a user
//! turn ends after a silence and an agent that is speaking can be interrupted as soon as the
//! user starts, before any transcript exists.
//!
//! The detector is an energy detector with an adaptive noise floor, a zero-crossing check and
//! a hangover: each 20 ms frame's level (dBFS) is compared with the background level it has
//! tracked so far. A frame is voiced when it stands at least [`MARGIN_DB`] above that floor and
//! above [`ABSOLUTE_DB`], and (to start an utterance) its zero-crossing rate is below what hiss
//! shows. Speech starts after [`ONSET_FRAMES`] voiced frames in a row and ends once the turn's
//! silence has passed with no voiced frame (the hangover), so the pauses between words do not
//! split an utterance. The floor is the quietest frame of the last [`FLOOR_WINDOW_MS`]
//! (minimum statistics): speech always has quieter gaps between syllables, so a voice never
//! becomes the floor, while steady noise (a fan, a line hum) has none and is learnt within the
//! window.

use std::collections::VecDeque;

/// Frames are this long.
const FRAME_MS: u32 = 20;
/// A voiced frame stands this far above the noise floor.
const MARGIN_DB: f32 = 10.0;
/// … and above this level, so near-silent digital noise is never speech.
const ABSOLUTE_DB: f32 = -50.0;
/// Voiced frames in a row before speech is said to start (60 ms: clicks are shorter).
const ONSET_FRAMES: u32 = 3;
/// Zero crossings per sample above which a frame is noise rather than voice.
const MAX_ZERO_CROSSING_RATE: f32 = 0.45;
/// Audio kept from before the start of speech, so the first syllable is not cut.
const PREROLL_MS: u32 = 300;
/// Silence kept at the end of an utterance.
const TAIL_MS: u32 = 200;
/// Longest utterance: speech this long is sent for transcription as it is.
const MAX_UTTERANCE_MS: u32 = 30_000;
/// The floor assumed before any audio: a quiet room.
const QUIET_ROOM_DB: f32 = -60.0;
/// The floor is the quietest frame within this window.
const FLOOR_WINDOW_MS: u32 = 2_000;
/// Utterances with less voiced audio than this are dropped (a cough, a door).
const MIN_SPEECH_MS: u32 = 120;

/// What a piece of audio changed.
#[derive(Debug, Clone, PartialEq)]
pub enum VadEvent {
    /// The user started speaking.
    Started,
    /// The user stopped speaking: the whole utterance, pre-roll included.
    Utterance(Vec<i16>),
}

/// The detector's verdict on one piece of audio.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct VadOutput {
    /// How likely the piece holds speech, 0 to 1 (its loudest frame's).
    pub score: f32,
    /// What changed, in order.
    pub events: Vec<VadEvent>,
}

/// The detector of one conversation's user audio.
#[derive(Debug)]
pub struct Vad {
    frame_len: usize,
    rate: u32,
    end_silence_frames: u32,
    recent_db: VecDeque<f32>,
    pending: Vec<i16>,
    preroll: VecDeque<i16>,
    utterance: Vec<i16>,
    speaking: bool,
    voiced_run: u32,
    voiced_frames: u32,
    silent_run: u32,
}

impl Vad {
    /// A detector for audio at `rate` Hz that ends an utterance after `end_silence_ms`.
    pub fn new(rate: u32, end_silence_ms: u32) -> Vad {
        Vad {
            frame_len: (rate * FRAME_MS / 1000).max(1) as usize,
            rate,
            end_silence_frames: (end_silence_ms / FRAME_MS).max(1),
            // A quiet room until the window has heard the real one, so speech at the very
            // start of the stream is not its own floor.
            recent_db: VecDeque::from([QUIET_ROOM_DB]),
            pending: Vec::new(),
            preroll: VecDeque::new(),
            utterance: Vec::new(),
            speaking: false,
            voiced_run: 0,
            voiced_frames: 0,
            silent_run: 0,
        }
    }

    /// Whether the user is speaking now.
    pub fn speaking(&self) -> bool {
        self.speaking
    }

    /// Samples held: the pre-roll, the utterance so far, a partial frame.
    pub fn buffered(&self) -> usize {
        self.pending.len() + self.preroll.len() + self.utterance.len()
    }

    /// Feeds audio; returns its score and what it changed.
    pub fn push(&mut self, samples: &[i16]) -> VadOutput {
        let mut out = VadOutput::default();
        self.pending.extend_from_slice(samples);
        let frames = self.pending.len() / self.frame_len;
        for i in 0..frames {
            let start = i * self.frame_len;
            let frame: Vec<i16> = self.pending[start..start + self.frame_len].to_vec();
            let score = self.frame(&frame, &mut out.events);
            out.score = out.score.max(score);
        }
        self.pending.drain(..frames * self.frame_len);
        out
    }

    fn frame(&mut self, frame: &[i16], events: &mut Vec<VadEvent>) -> f32 {
        let (db, zcr) = measure(frame);
        self.track_floor(db);
        let floor = self.recent_db.iter().copied().fold(0.0f32, f32::min);
        let threshold = (floor + MARGIN_DB).max(ABSOLUTE_DB);
        // Within an utterance a loud frame counts whatever its zero crossings (the fricatives
        // that end words: the "s" of "status"); the check only keeps hiss from starting one.
        let voiced = db > threshold && (self.speaking || zcr < MAX_ZERO_CROSSING_RATE);
        let score = (1.0 / (1.0 + (-(db - threshold) / 3.0).exp())).clamp(0.0, 1.0);
        if self.speaking {
            self.utterance.extend_from_slice(frame);
            if voiced {
                self.silent_run = 0;
                self.voiced_frames += 1;
            } else {
                self.silent_run += 1;
            }
            let too_long = self.utterance.len() as u64 * 1000
                >= u64::from(MAX_UTTERANCE_MS) * u64::from(self.rate);
            if self.silent_run >= self.end_silence_frames || too_long {
                self.finish(events);
            }
            return score;
        }
        self.voiced_run = if voiced { self.voiced_run + 1 } else { 0 };
        self.preroll.extend(frame.iter().copied());
        let keep = (self.rate * PREROLL_MS / 1000) as usize;
        while self.preroll.len() > keep {
            self.preroll.pop_front();
        }
        if self.voiced_run >= ONSET_FRAMES {
            self.speaking = true;
            self.voiced_frames = self.voiced_run;
            self.silent_run = 0;
            self.utterance = self.preroll.drain(..).collect();
            events.push(VadEvent::Started);
        }
        score
    }

    fn finish(&mut self, events: &mut Vec<VadEvent>) {
        self.speaking = false;
        self.voiced_run = 0;
        let mut utterance = std::mem::take(&mut self.utterance);
        // The silence that ended it is not sent for transcription, past a short tail.
        let tail = self.silent_run.saturating_sub(TAIL_MS / FRAME_MS) as usize * self.frame_len;
        utterance.truncate(utterance.len().saturating_sub(tail));
        if self.voiced_frames * FRAME_MS >= MIN_SPEECH_MS {
            events.push(VadEvent::Utterance(utterance));
        }
        self.voiced_frames = 0;
    }

    fn track_floor(&mut self, db: f32) {
        self.recent_db.push_back(db.max(-90.0));
        if self.recent_db.len() > (FLOOR_WINDOW_MS / FRAME_MS) as usize {
            self.recent_db.pop_front();
        }
    }
}

/// A frame's level in dBFS and its zero crossings per sample.
fn measure(frame: &[i16]) -> (f32, f32) {
    let energy: f64 = frame.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / frame.len() as f64;
    let db = (10.0 * (energy.max(1.0) / (32768.0f64 * 32768.0)).log10()) as f32;
    let crossings = frame.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    (db, crossings as f32 / frame.len() as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 16_000;

    fn silence(ms: u32) -> Vec<i16> {
        // A little noise, as a real line has.
        (0..RATE * ms / 1000).map(|i| ((i * 7919) % 61) as i16 - 30).collect()
    }

    /// A vowel-like sound: a 180 Hz fundamental with harmonics.
    fn voice(ms: u32) -> Vec<i16> {
        (0..RATE * ms / 1000)
            .map(|i| {
                let t = f64::from(i) / f64::from(RATE);
                let w = |f: f64, a: f64| a * (2.0 * std::f64::consts::PI * f * t).sin();
                (8000.0 * (w(180.0, 1.0) + w(360.0, 0.5) + w(720.0, 0.25))) as i16
            })
            .collect()
    }

    fn run(vad: &mut Vad, parts: &[Vec<i16>]) -> Vec<VadEvent> {
        parts.iter().flat_map(|p| vad.push(p).events).collect()
    }

    #[test]
    fn speech_between_silences_is_one_utterance_ended_by_the_silence() {
        let mut vad = Vad::new(RATE, 500);
        let events =
            run(&mut vad, &[silence(400), voice(600), silence(200), voice(300), silence(600)]);
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[0], VadEvent::Started);
        let VadEvent::Utterance(samples) = &events[1] else { panic!("{events:?}") };
        let ms = samples.len() as u32 * 1000 / RATE;
        assert!((1100..=1700).contains(&ms), "utterance of {ms} ms");
        assert!(!vad.speaking());
    }

    #[test]
    fn silence_and_a_click_are_not_speech() {
        let mut vad = Vad::new(RATE, 500);
        let events = run(&mut vad, &[silence(1000), voice(40), silence(1000)]);
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn the_score_follows_the_voice_and_chunks_of_any_size_work() {
        let mut vad = Vad::new(RATE, 500);
        assert!(vad.push(&silence(300)).score < 0.2);
        let audio = voice(300);
        let scores: Vec<f32> = audio.chunks(37).map(|c| vad.push(c).score).collect();
        assert!(scores.iter().any(|s| *s > 0.9), "{scores:?}");
        assert!(vad.speaking());
    }

    #[test]
    fn steady_noise_is_learnt_as_background() {
        let mut vad = Vad::new(RATE, 500);
        let hum: Vec<i16> = (0..RATE * 3)
            .map(|i| {
                (1500.0 * (2.0 * std::f64::consts::PI * 50.0 * f64::from(i) / 16000.0).sin()) as i16
            })
            .collect();
        // Until the window has seen it, the hum may sound like speech; then it is the floor.
        let events = run(&mut vad, std::slice::from_ref(&hum));
        assert!(events.len() <= 2, "{events:?}");
        assert!(run(&mut vad, &[hum]).is_empty());
        let later = run(&mut vad, &[silence(100)]);
        assert!(later.iter().all(|e| *e != VadEvent::Started));
    }
}

/// This detector measured against WebRTC's (libfvad, through the `webrtc-vad` crate, in its
/// "quality" mode) on speech made by espeak-ng over a noisy line: both decisions go through the
/// same onset and hangover, and must find the same utterances with boundaries close together.
#[cfg(test)]
mod against_webrtc {
    use super::*;
    use crate::voice::{format::resample, wav};

    const RATE: u32 = 16_000;
    const END_SILENCE_MS: u32 = 700;
    /// Both detectors settle on the line's noise during this first stretch; it is not compared.
    const WARM_UP_MS: u64 = 500;

    /// espeak-ng saying `text` at 16 kHz; `None` without espeak-ng (a failure under CI, which
    /// installs it).
    fn espeak(text: &str) -> Option<Vec<i16>> {
        let out = std::process::Command::new("espeak-ng")
            .args(["--stdout", "-v", "en-us", text])
            .output();
        match out {
            Ok(out) if out.status.success() => {
                let (samples, rate) = wav::decode(&out.stdout).expect("espeak-ng writes WAV");
                Some(resample(&samples, rate, RATE))
            }
            _ => {
                assert!(std::env::var_os("CI").is_none(), "CI is set but espeak-ng is missing");
                None
            }
        }
    }

    /// A quiet line's noise (about -50 dBFS), deterministic.
    fn noise(ms: u32, seed: &mut u32) -> Vec<i16> {
        (0..RATE * ms / 1000)
            .map(|_| {
                *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((*seed >> 16) % 200) as i16 - 100
            })
            .collect()
    }

    /// Start and end (ms) of each utterance, from per-frame decisions, with this detector's
    /// onset and hangover.
    fn segments(voiced: &[bool]) -> Vec<(u64, u64)> {
        let (mut out, mut run, mut silent, mut start) = (Vec::new(), 0u32, 0u32, None);
        let end_frames = END_SILENCE_MS / FRAME_MS;
        for (i, v) in voiced.iter().enumerate() {
            let at = i as u64 * u64::from(FRAME_MS);
            match start {
                None => {
                    run = if *v { run + 1 } else { 0 };
                    if run >= ONSET_FRAMES {
                        start = Some(at - u64::from((ONSET_FRAMES - 1) * FRAME_MS));
                    }
                }
                Some(s) => {
                    silent = if *v { 0 } else { silent + 1 };
                    if silent >= end_frames {
                        out.push((s, at + u64::from(FRAME_MS) - u64::from(end_frames * FRAME_MS)));
                        (start, run, silent) = (None, 0, 0);
                    }
                }
            }
        }
        out.retain(|(s, _)| *s >= WARM_UP_MS);
        out
    }

    #[test]
    fn finds_the_utterances_webrtc_finds() {
        let phrases = ["hello there", "check my order status", "what is the weather in paris"];
        let Some(spoken) = phrases.iter().map(|p| espeak(p)).collect::<Option<Vec<_>>>() else {
            eprintln!("skipped: espeak-ng is not installed");
            return;
        };
        let mut seed = 7;
        let mut audio = noise(1000, &mut seed);
        for phrase in &spoken {
            let line = noise(phrase.len() as u32 * 1000 / RATE + 1, &mut seed);
            audio.extend(
                phrase
                    .iter()
                    .zip(line.iter().chain(std::iter::repeat(&0)))
                    .map(|(a, b)| a.saturating_add(*b)),
            );
            audio.extend(noise(1500, &mut seed));
        }
        let frame = (RATE * FRAME_MS / 1000) as usize;
        let mut ours_vad = Vad::new(RATE, END_SILENCE_MS);
        let (mut ours, mut events) = (Vec::new(), Vec::new());
        for (i, f) in audio.chunks_exact(frame).enumerate() {
            for e in ours_vad.push(f).events {
                events.push((i, e));
            }
        }
        for (i, e) in &events {
            let at = *i as u64 * u64::from(FRAME_MS);
            match e {
                VadEvent::Started => ours.push((at - u64::from((ONSET_FRAMES - 1) * FRAME_MS), 0)),
                VadEvent::Utterance(_) => {
                    if let Some(last) = ours.last_mut() {
                        last.1 = at + u64::from(FRAME_MS) - u64::from(END_SILENCE_MS);
                    }
                }
            }
        }
        ours.retain(|(s, _)| *s >= WARM_UP_MS);
        let mut webrtc = webrtc_vad::Vad::new_with_rate_and_mode(
            webrtc_vad::SampleRate::Rate16kHz,
            webrtc_vad::VadMode::Quality,
        );
        let theirs: Vec<bool> = audio
            .chunks_exact(frame)
            .map(|f| webrtc.is_voice_segment(f).unwrap_or(false))
            .collect();
        let theirs = segments(&theirs);
        eprintln!("utterances (ms), this detector: {ours:?}; WebRTC: {theirs:?}");
        assert_eq!(ours.len(), phrases.len(), "this detector: {ours:?}");
        assert_eq!(theirs.len(), phrases.len(), "WebRTC: {theirs:?}");
        for ((s1, e1), (s2, e2)) in ours.iter().zip(&theirs) {
            assert!(
                s1.abs_diff(*s2) <= 100 && e1.abs_diff(*e2) <= 200,
                "{ours:?} against {theirs:?}"
            );
        }
    }
}
