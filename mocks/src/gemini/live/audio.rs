//! Voice in and out of the Live mock.
//!
//! The mock cannot recognise speech, so it does what it honestly can with the
//! audio a client streams, and leaves the words to the script:
//!
//! - **Decoding** as the service does: `realtimeInput.audio` (and the older
//!   `mediaChunks`) carry raw 16-bit little-endian mono PCM, `audio/pcm` with
//!   an optional `;rate=N` (16 kHz when absent), base64 in either alphabet
//!   (the Python SDK sends URL-safe base64). Any other audio type is refused
//!   (the session closes with 1007 naming the type); image and video frames
//!   are accepted and not looked at.
//! - **Voice activity by energy**: the samples are cut in 20 ms frames; a
//!   frame is voiced when its RMS reaches the threshold (200 of 32767, about
//!   -44 dBFS, for `startOfSpeechSensitivity` HIGH, Gemini's default; 800 for
//!   LOW). Speech starts after `prefixPaddingMs` of consecutive voiced frames
//!   (default 100 ms; a shorter click is noise) and, with automatic activity
//!   detection (the default), ends after `silenceDurationMs` of unvoiced
//!   frames (default 500 ms; 1000 ms for `endOfSpeechSensitivity` LOW) or at
//!   `audioStreamEnd`. Silence, however long, is no utterance: the real
//!   service waits for speech, and so does the mock. With
//!   `automaticActivityDetection.disabled` the client marks the utterance
//!   with `activityStart`/`activityEnd`, and the audio between them is an
//!   utterance when any frame of it is voiced.
//! - **What was said** comes from the script: each utterance reports its
//!   voiced duration and its pitch, estimated from zero crossings, so a test
//!   can pick the transcript with the frequency of the tone it sends
//!   (`transcripts.by-tone` in `gemini.yaml`); otherwise the script's default
//!   transcript.
//! - **The model's voice** (AUDIO modality) is 24 kHz PCM of a 220 Hz tone,
//!   0.1 s per word of the answer, so a client's playback and level meters
//!   see real, non-silent audio of a plausible length.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde_json::Value;

const FRAME_MS: u32 = 20;
const INPUT_RATE: u32 = 16_000;
/// Sample rate of the model's audio (`audio/pcm;rate=24000`).
pub(super) const OUTPUT_RATE: u32 = 24_000;
const OUTPUT_TONE_HZ: f64 = 220.0;
const OUTPUT_AMPLITUDE: f64 = 6000.0;
/// Seconds of model audio per answered word.
const SECONDS_PER_WORD: f64 = 0.1;

const PADDING: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const B64_STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, PADDING);
const B64_URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, PADDING);

/// Base64 in the standard or the URL-safe alphabet, padded or not.
pub(super) fn decode_base64(data: &str) -> Option<Vec<u8>> {
    B64_STANDARD
        .decode(data)
        .or_else(|_| B64_URL_SAFE.decode(data))
        .ok()
}

/// What a realtime blob holds, by its mime type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Media {
    /// 16-bit PCM at this sample rate.
    Pcm(u32),
    /// An image or video frame.
    Visual,
}

/// Classifies a blob sent as `realtime_input.{field}`; `Err` is the close reason.
pub(super) fn media(mime: &str, field: &str) -> Result<Media, String> {
    let lower = mime.to_ascii_lowercase();
    let mut parts = lower.split(';').map(str::trim);
    let kind = parts.next().unwrap_or_default();
    let visual = kind.starts_with("image/") || kind.starts_with("video/");
    match (field, kind) {
        ("audio" | "mediaChunks", "audio/pcm") => {
            let mut rate = INPUT_RATE;
            for param in parts {
                if let Some(value) = param.strip_prefix("rate=") {
                    rate = value
                        .parse()
                        .ok()
                        .filter(|r| (8_000..=48_000).contains(r))
                        .ok_or_else(|| {
                            format!("Invalid sample rate in mime type \"{mime}\" for realtime_input.{field}: 8000 to 48000 Hz.")
                        })?;
                }
            }
            Ok(Media::Pcm(rate))
        }
        ("video" | "mediaChunks", _) if visual => Ok(Media::Visual),
        ("video", _) => Err(format!(
            "Unsupported mime type \"{mime}\" for realtime_input.video: send image frames (image/jpeg)."
        )),
        _ => Err(format!(
            "Unsupported mime type \"{mime}\" for realtime_input.{field}: send 16-bit PCM, audio/pcm;rate=16000."
        )),
    }
}

/// Voice activity settings from `setup.realtimeInputConfig.automaticActivityDetection`.
#[derive(Debug, Clone, Copy)]
pub(super) struct VadConfig {
    /// Server-side detection (the default); else the client sends activity signals.
    pub(super) automatic: bool,
    threshold: f64,
    prefix_ms: u32,
    silence_ms: u32,
}

impl VadConfig {
    pub(super) fn from_setup(setup: &Value) -> Self {
        let aad = setup.pointer("/realtimeInputConfig/automaticActivityDetection");
        let get = |key: &str| aad.and_then(|a| a.get(key));
        let low = |key: &str, value: &str| get(key).and_then(Value::as_str) == Some(value);
        let ms = |key: &str| {
            get(key)
                .and_then(Value::as_u64)
                .and_then(|v| u32::try_from(v).ok())
        };
        Self {
            automatic: !get("disabled").and_then(Value::as_bool).unwrap_or(false),
            threshold: if low("startOfSpeechSensitivity", "START_SENSITIVITY_LOW") {
                800.0
            } else {
                200.0
            },
            prefix_ms: ms("prefixPaddingMs").unwrap_or(100).max(FRAME_MS),
            silence_ms: ms("silenceDurationMs").unwrap_or(
                if low("endOfSpeechSensitivity", "END_SENSITIVITY_LOW") {
                    1000
                } else {
                    500
                },
            ),
        }
    }
}

/// One thing the user said.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Utterance {
    /// Milliseconds of voiced audio.
    pub(super) voiced_ms: u32,
    /// Pitch estimated from zero crossings over the voiced frames.
    pub(super) tone_hz: Option<f64>,
}

#[derive(Debug, Default)]
struct Stats {
    voiced_ms: u32,
    seconds: f64,
    crossings: u64,
    last: Option<i16>,
}

/// Energy-based voice activity detection over a PCM stream.
#[derive(Debug)]
pub(super) struct Vad {
    config: VadConfig,
    carry: Option<u8>,
    frame: Vec<i16>,
    rate: u32,
    speaking: bool,
    voiced_run_ms: u32,
    silence_run_ms: u32,
    current: Stats,
}

impl Vad {
    pub(super) fn new(config: VadConfig) -> Self {
        Self {
            config,
            carry: None,
            frame: Vec::new(),
            rate: INPUT_RATE,
            speaking: false,
            voiced_run_ms: 0,
            silence_run_ms: 0,
            current: Stats::default(),
        }
    }

    /// Feeds PCM bytes; returns the utterances that trailing silence ended.
    pub(super) fn push(&mut self, pcm: &[u8], rate: u32) -> Vec<Utterance> {
        if rate != self.rate {
            self.frame.clear();
            self.carry = None;
            self.rate = rate;
        }
        let frame_len = (rate * FRAME_MS / 1000) as usize;
        let mut done = Vec::new();
        let mut bytes = pcm.iter().copied();
        while let Some(lo) = self.carry.take().or_else(|| bytes.next()) {
            let Some(hi) = bytes.next() else {
                // Half a sample: completed by the next chunk.
                self.carry = Some(lo);
                break;
            };
            self.frame.push(i16::from_le_bytes([lo, hi]));
            if self.frame.len() == frame_len {
                done.extend(self.frame_done());
            }
        }
        done
    }

    /// End of the audio (`audioStreamEnd`, `activityEnd`): the utterance in
    /// progress, if there is one.
    pub(super) fn finish(&mut self) -> Option<Utterance> {
        if !self.frame.is_empty() {
            if let Some(u) = self.frame_done() {
                return Some(u);
            }
        }
        let said = if self.config.automatic {
            self.speaking
        } else {
            self.current.voiced_ms > 0
        };
        let stats = std::mem::take(&mut self.current);
        self.clear();
        said.then(|| Utterance {
            voiced_ms: stats.voiced_ms,
            tone_hz: (stats.seconds > 0.0).then(|| stats.crossings as f64 / 2.0 / stats.seconds),
        })
    }

    /// Forgets everything heard (a new `activityStart`).
    pub(super) fn clear(&mut self) {
        self.frame.clear();
        self.carry = None;
        self.speaking = false;
        self.voiced_run_ms = 0;
        self.silence_run_ms = 0;
        self.current = Stats::default();
    }

    fn frame_done(&mut self) -> Option<Utterance> {
        let frame = std::mem::take(&mut self.frame);
        let energy: f64 = frame.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
        let rms = (energy / frame.len().max(1) as f64).sqrt();
        if rms >= self.config.threshold {
            let mut last = self.current.last;
            for &s in &frame {
                if last.is_some_and(|l| (l < 0) != (s < 0)) {
                    self.current.crossings += 1;
                }
                last = Some(s);
            }
            self.current.last = last;
            self.current.seconds += frame.len() as f64 / f64::from(self.rate);
            self.current.voiced_ms += FRAME_MS;
            self.silence_run_ms = 0;
            if !self.speaking {
                self.voiced_run_ms += FRAME_MS;
                self.speaking = self.voiced_run_ms >= self.config.prefix_ms;
            }
            return None;
        }
        self.current.last = None;
        if !self.config.automatic {
            return None;
        }
        if self.speaking {
            self.silence_run_ms += FRAME_MS;
            if self.silence_run_ms >= self.config.silence_ms {
                return self.finish();
            }
        } else {
            // A voiced blip shorter than the prefix padding: noise, forgotten.
            self.voiced_run_ms = 0;
            self.current = Stats::default();
        }
        None
    }
}

/// The model's spoken answer to `text`: 24 kHz 16-bit PCM of a tone.
pub(super) fn speech_for(text: &str) -> Vec<u8> {
    let words = text.split_whitespace().count().max(1);
    let samples = (f64::from(OUTPUT_RATE) * SECONDS_PER_WORD) as usize * words;
    let step = std::f64::consts::TAU * OUTPUT_TONE_HZ / f64::from(OUTPUT_RATE);
    let mut pcm = Vec::with_capacity(samples * 2);
    for i in 0..samples {
        let sample = (OUTPUT_AMPLITUDE * (step * i as f64).sin()) as i16;
        pcm.extend_from_slice(&sample.to_le_bytes());
    }
    pcm
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tone(hz: f64, ms: u32, amplitude: f64) -> Vec<u8> {
        let n = (INPUT_RATE * ms / 1000) as usize;
        (0..n)
            .flat_map(|i| {
                let t = i as f64 / f64::from(INPUT_RATE);
                ((amplitude * (std::f64::consts::TAU * hz * t).sin()) as i16).to_le_bytes()
            })
            .collect()
    }

    fn vad(setup: Value) -> Vad {
        Vad::new(VadConfig::from_setup(&setup))
    }

    #[test]
    fn a_tone_then_silence_is_one_utterance_with_its_pitch() {
        let mut v = vad(json!({}));
        let mut audio = tone(0.0, 300, 0.0);
        audio.extend(tone(440.0, 1000, 8000.0));
        audio.extend(tone(0.0, 700, 0.0));
        // Odd-sized chunks: samples straddle chunk boundaries.
        let heard: Vec<Utterance> = audio
            .chunks(3201)
            .flat_map(|c| v.push(c, INPUT_RATE))
            .collect();
        assert_eq!(heard.len(), 1, "{heard:?}");
        assert_eq!(heard[0].voiced_ms, 1000);
        let hz = heard[0].tone_hz.unwrap();
        assert!((hz - 440.0).abs() < 5.0, "{hz}");
        assert_eq!(v.finish(), None, "nothing left after the utterance ended");
    }

    #[test]
    fn silence_and_clicks_are_no_utterance() {
        let mut v = vad(json!({}));
        assert!(v.push(&tone(0.0, 3000, 0.0), INPUT_RATE).is_empty());
        assert!(
            v.push(&tone(300.0, 2000, 50.0), INPUT_RATE).is_empty(),
            "quiet hum"
        );
        assert!(v.push(&tone(300.0, 40, 9000.0), INPUT_RATE).is_empty());
        assert!(
            v.push(&tone(0.0, 1000, 0.0), INPUT_RATE).is_empty(),
            "a 40 ms click"
        );
        assert_eq!(v.finish(), None);
    }

    #[test]
    fn stream_end_closes_speech_and_manual_mode_waits_for_activity_end() {
        let mut v = vad(json!({}));
        assert!(v.push(&tone(880.0, 500, 5000.0), INPUT_RATE).is_empty());
        assert_eq!(v.finish().map(|u| u.voiced_ms), Some(500));
        let mut m =
            vad(json!({"realtimeInputConfig": {"automaticActivityDetection": {"disabled": true}}}));
        let mut audio = tone(880.0, 200, 5000.0);
        audio.extend(tone(0.0, 2000, 0.0));
        assert!(
            m.push(&audio, INPUT_RATE).is_empty(),
            "no end of speech by silence"
        );
        assert_eq!(m.finish().map(|u| u.voiced_ms), Some(200));
    }

    #[test]
    fn mime_types_and_base64() {
        assert_eq!(
            media("audio/pcm;rate=24000", "audio"),
            Ok(Media::Pcm(24_000))
        );
        assert_eq!(media("audio/pcm", "mediaChunks"), Ok(Media::Pcm(16_000)));
        assert_eq!(media("image/jpeg", "mediaChunks"), Ok(Media::Visual));
        let err = media("audio/mpeg", "audio").unwrap_err();
        assert!(
            err.starts_with("Unsupported mime type \"audio/mpeg\" for realtime_input.audio"),
            "{err}"
        );
        assert!(media("audio/pcm;rate=fast", "audio").is_err());
        assert_eq!(decode_base64("-__-P_v__j_7__4_").unwrap().len(), 12);
        assert_eq!(decode_base64("+//+P/v//j/7//4/").unwrap().len(), 12);
        assert_eq!(decode_base64("AAE"), Some(vec![0, 1]));
        assert_eq!(decode_base64("not base64!"), None);
    }

    #[test]
    fn the_model_speaks_audibly() {
        let pcm = speech_for("three short words");
        assert_eq!(pcm.len(), 3 * 2400 * 2);
        assert!(pcm
            .chunks(2)
            .any(|s| i16::from_le_bytes([s[0], s[1]]).abs() > 1000));
    }
}
