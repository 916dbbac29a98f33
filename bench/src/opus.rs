//! `kakeru-bench opus`: the Opus archive pool's throughput, in call-minutes encoded per
//! core-second (the figure that sizes the encoder cores beside the relay cores).
//!
//! The bench writes `--recordings` stereo G.711 recordings of `--minutes` each through the
//! relay's own [`RecordingWriter`] (a conversation: customer and agent take turns, speech-like
//! bursts of harmonics under a syllable envelope, with line noise), then hands them all to the
//! archive's encoder [`media_archive::pool::Pool`] (`--workers` threads pinned to `--cores`),
//! and measures the wall time, the workers' CPU time and the Opus bytes per call-minute.
//!
//! [`RecordingWriter`]: media::recording::RecordingWriter

use serde::Serialize;

#[cfg(feature = "opus")]
use {
    media::g711::Codec,
    media::recording::{self, RecordingWriter},
    rand::{Rng, SeedableRng},
    std::path::Path,
    std::time::Instant,
};

/// Arguments of `kakeru-bench opus`.
#[derive(Debug, Clone, clap::Args)]
pub struct OpusArgs {
    /// Recordings to encode.
    #[arg(long, default_value_t = 24)]
    pub recordings: usize,
    /// Minutes per recording.
    #[arg(long, default_value_t = 3.0)]
    pub minutes: f64,
    /// Encoder threads.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Cores the workers are pinned to, round-robin (empty: not pinned).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub cores: Vec<usize>,
    /// Print one JSON document instead of a line.
    #[arg(long)]
    pub json: bool,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct OpusRun {
    pub recordings: usize,
    pub workers: usize,
    pub call_minutes: f64,
    pub wall_s: f64,
    /// CPU time the workers spent encoding.
    pub cpu_s: f64,
    pub call_minutes_per_core_second: f64,
    pub call_minutes_per_wall_second: f64,
    /// Opus bytes per call-minute (both channels; the reference is about 120 KB).
    pub kb_per_call_minute: f64,
    /// G.711 WAV bytes per call-minute, for the ratio.
    pub wav_kb_per_call_minute: f64,
    pub failed: usize,
}

#[cfg(feature = "opus")]
/// 20 ms of one side of a conversation at `frame` (8 kHz): speech-like while `talking`, else
/// line noise.
fn frame_pcm(rng: &mut impl Rng, frame: u64, talking: bool, pitch: f64, out: &mut [i16; 160]) {
    for (i, s) in out.iter_mut().enumerate() {
        let t = (frame * 160 + i as u64) as f64 / 8000.0;
        let noise = rng.gen_range(-60.0..60.0);
        let voice = if talking {
            // A syllable envelope at about 4 Hz over three harmonics of a wandering pitch.
            let env = (std::f64::consts::PI * 4.0 * t).sin().abs();
            let f0 = pitch * (1.0 + 0.08 * (std::f64::consts::TAU * 0.7 * t).sin());
            let w = std::f64::consts::TAU * f0 * t;
            env * (5000.0 * w.sin() + 2500.0 * (2.0 * w).sin() + 1200.0 * (3.0 * w).sin())
        } else {
            0.0
        };
        *s = (voice + noise).clamp(-32768.0, 32767.0) as i16;
    }
}

/// Write one recording of `frames` 20 ms frames to `path`.
#[cfg(feature = "opus")]
fn write_recording(path: &Path, frames: u64, seed: u64) -> anyhow::Result<u64> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut file = std::fs::File::create(path)?;
    let mut w = RecordingWriter::new(Codec::Pcmu, 1000);
    let (mut c_pcm, mut a_pcm) = ([0i16; 160], [0i16; 160]);
    let (mut c, mut a) = (Vec::with_capacity(160), Vec::with_capacity(160));
    // Turns of 1 to 6 seconds, customer first.
    let mut customer_talks = true;
    let mut turn_left = rng.gen_range(50..300u64);
    for frame in 0..frames {
        if turn_left == 0 {
            customer_talks = !customer_talks;
            turn_left = rng.gen_range(50..300);
        }
        turn_left -= 1;
        frame_pcm(&mut rng, frame, customer_talks, 180.0, &mut c_pcm);
        frame_pcm(&mut rng, frame, !customer_talks, 120.0, &mut a_pcm);
        c.clear();
        a.clear();
        Codec::Pcmu.encode_into(&c_pcm, &mut c);
        Codec::Pcmu.encode_into(&a_pcm, &mut a);
        w.append(&c, &a).map_err(|e| anyhow::anyhow!("recording: {e:?}"))?;
        while let Some(write) = w.poll_write() {
            recording::apply(&mut file, &write)?;
        }
    }
    w.finish();
    while let Some(write) = w.poll_write() {
        recording::apply(&mut file, &write)?;
    }
    Ok(file.metadata()?.len())
}

/// Run the bench (see module docs).
pub fn run(args: &OpusArgs) -> anyhow::Result<()> {
    anyhow::ensure!((1..=10_000).contains(&args.recordings), "--recordings must be in 1..=10000");
    anyhow::ensure!(args.minutes > 0.0 && args.minutes <= 120.0, "--minutes must be in (0, 120]");
    anyhow::ensure!((1..=256).contains(&args.workers), "--workers must be in 1..=256");
    let r = measure(args)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "opus pool: {} recordings, {:.1} call-minutes, {} worker(s): {:.2} call-minutes per core-second ({:.2} per wall second), {:.1} KB per call-minute (WAV {:.1} KB), {} failed",
            r.recordings,
            r.call_minutes,
            r.workers,
            r.call_minutes_per_core_second,
            r.call_minutes_per_wall_second,
            r.kb_per_call_minute,
            r.wav_kb_per_call_minute,
            r.failed
        );
    }
    Ok(())
}

#[cfg(not(feature = "opus"))]
fn measure(_args: &OpusArgs) -> anyhow::Result<OpusRun> {
    anyhow::bail!("this build has no Opus archive: build kakeru with --features opus (libopus needs cmake)")
}

#[cfg(feature = "opus")]
fn measure(args: &OpusArgs) -> anyhow::Result<OpusRun> {
    use media_archive::pool::{Job, Pool};
    use media_archive::Outcome;

    let dir = tempfile::tempdir()?;
    let frames = (args.minutes * 60.0 * 50.0).round().max(1.0) as u64;
    let mut wav_bytes = 0u64;
    let mut paths = Vec::with_capacity(args.recordings);
    for i in 0..args.recordings {
        let path = dir.path().join(format!("rec-{i}.wav"));
        wav_bytes += write_recording(&path, frames, i as u64 + 1)?;
        paths.push(path);
    }
    let call_minutes = args.recordings as f64 * frames as f64 / 50.0 / 60.0;
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel(args.recordings.max(1));
    let pool = Pool::start(args.workers, &args.cores, done_tx);
    let t0 = Instant::now();
    let mut pending = paths.into_iter().enumerate().map(|(i, wav)| Job { tenant_id: 1, id: i as i64, wav });
    let mut next = pending.next();
    let (mut finished, mut failed, mut cpu, mut opus_bytes) = (0usize, 0usize, 0.0f64, 0u64);
    while finished < args.recordings {
        while let Some(job) = next.take() {
            match pool.try_submit(job) {
                Ok(()) => next = pending.next(),
                Err(job) => {
                    next = Some(job);
                    break;
                }
            }
        }
        let Some(done) = done_rx.blocking_recv() else { anyhow::bail!("the encoder pool stopped") };
        finished += 1;
        cpu += done.cpu.as_secs_f64();
        match done.result {
            Ok(Outcome::Encoded { bytes, .. }) => opus_bytes += bytes,
            Ok(Outcome::Missing) | Err(_) => failed += 1,
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    drop(pool);
    Ok(OpusRun {
        recordings: args.recordings,
        workers: args.workers,
        call_minutes,
        wall_s: wall,
        cpu_s: cpu,
        call_minutes_per_core_second: if cpu > 0.0 { call_minutes / cpu } else { 0.0 },
        call_minutes_per_wall_second: call_minutes / wall,
        kb_per_call_minute: opus_bytes as f64 / 1000.0 / call_minutes,
        wav_kb_per_call_minute: wav_bytes as f64 / 1000.0 / call_minutes,
        failed,
    })
}
