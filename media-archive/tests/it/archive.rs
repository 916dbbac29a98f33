//! The recording pipeline: Opus encoding, the pool over a real database (SQLite and PostgreSQL),
//! crash recovery and the per-tenant quota.

use std::path::{Path, PathBuf};
use std::time::Duration;

use media::opus;
use media::recording;
use media::{Codec, RecordingId};
use media_archive::{self as archive, ArchiveConfig, Archiver, Outcome};
use store::recordings::{self as recs, Format, NewRecording};
use store::sqlx::{self, Row};
use store::{Backend, Db};

use crate::harness::{packet, Sim};

const CUSTOMER_HZ: f32 = 600.0;
const AGENT_HZ: f32 = 1400.0;

fn tone(hz: f32, start: usize, n: usize) -> Vec<i16> {
    (start..start + n).map(|i| (8000.0 * (2.0 * std::f32::consts::PI * hz * i as f32 / 8000.0).sin()) as i16).collect()
}

/// Power of `hz` in `x` (Goertzel).
pub fn goertzel(x: &[i16], hz: f32) -> f64 {
    let k = 2.0 * (2.0 * std::f64::consts::PI * f64::from(hz) / 8000.0).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s = f64::from(v) + k * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - k * s1 * s2
}

/// A call recorded by the media core (the relay's own recording path), customer playing
/// `CUSTOMER_HZ` and agent `AGENT_HZ`, written to `path`.
fn record_tones(path: &Path, seconds: usize, codec: Codec) {
    let mut sim = Sim::new(|c| c.recording_header_every_ms = 1000);
    let agent = sim.leg(false, codec, false);
    let cust = sim.leg(true, codec, false);
    sim.call.set_agent(sim.now, agent);
    sim.call.set_customer(sim.now, cust);
    sim.call.start_recording(sim.now, RecordingId(1), codec);
    let pt = codec.payload_type();
    let mut file = std::fs::File::create(path).expect("create wav");
    for i in 0..seconds * 50 {
        let mut c = Vec::new();
        let mut a = Vec::new();
        codec.encode_into(&tone(CUSTOMER_HZ, i * 160, 160), &mut c);
        codec.encode_into(&tone(AGENT_HZ, i * 160, 160), &mut a);
        sim.receive(true, &packet(pt, false, i as u16, 160 * i as u32, 1, &c));
        sim.receive(false, &packet(pt, false, i as u16, 160 * i as u32, 2, &a));
        sim.advance(Duration::from_millis(20));
        for (_, w) in sim.take_writes() {
            recording::apply(&mut file, &w).expect("write");
        }
    }
    sim.call.stop_recording();
    for (_, w) in sim.take_writes() {
        recording::apply(&mut file, &w).expect("write");
    }
}

/// Each channel carries its own tone: its own frequency dominates the other's by 20 dB.
fn assert_channels_separate(d: &opus::Decoded) {
    // Skip the codec's start-up, measure a middle second.
    let mid = d.customer.len() / 2;
    let (c, a) = (&d.customer[mid..mid + 8000], &d.agent[mid..mid + 8000]);
    let (cc, ca) = (goertzel(c, CUSTOMER_HZ), goertzel(c, AGENT_HZ));
    let (aa, ac) = (goertzel(a, AGENT_HZ), goertzel(a, CUSTOMER_HZ));
    assert!(cc > 100.0 * ca, "customer channel: own tone {cc:.3e}, agent's tone {ca:.3e}");
    assert!(aa > 100.0 * ac, "agent channel: own tone {aa:.3e}, customer's tone {ac:.3e}");
}

#[test]
fn opus_file_keeps_duration_and_each_channel_its_own_signal() {
    for codec in [Codec::Pcmu, Codec::Pcma] {
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("1.wav");
        record_tones(&wav, 10, codec);
        let wav_len = std::fs::metadata(&wav).unwrap().len();
        let Outcome::Encoded { path, bytes, duration_ms } = archive::encode_file(&wav).expect("encodes") else {
            panic!("the WAV was there")
        };
        assert_eq!(path, wav.with_extension("opus"));
        assert!(!wav.exists(), "the WAV is removed once the Opus file is durable");
        assert!(!wav.with_extension("opus.tmp").exists());
        let ogg = std::fs::read(&path).unwrap();
        assert_eq!(bytes, ogg.len() as u64);
        assert_eq!(duration_ms, 10_000);
        assert_eq!(opus::samples_of(&ogg).unwrap(), 80_000);
        // At most 16 kbit/s per channel: 10 s is at most about 40 KB, under a quarter of the WAV.
        assert!((20_000..=50_000).contains(&bytes), "{bytes} bytes for 10 s");
        assert!(bytes * 4 < wav_len, "{bytes} vs WAV {wav_len}");
        let d = opus::decode(&ogg).expect("decodes");
        assert_eq!(d.customer.len(), 80_000, "duration kept to the sample");
        assert_eq!(d.agent.len(), 80_000);
        assert_channels_separate(&d);
    }
}

#[test]
fn a_crash_at_any_step_leaves_a_file_that_is_encoded_or_recognised() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("2.wav");
    record_tones(&wav, 3, Codec::Pcmu);
    let original = std::fs::read(&wav).unwrap();
    // Killed mid-encode: a partial temporary file beside the intact WAV.
    std::fs::write(wav.with_extension("opus.tmp"), b"OggS partial").unwrap();
    let first = archive::encode_file(&wav).expect("re-encodes");
    // Killed after the rename, before the WAV was removed: both exist; encoding again is the same.
    std::fs::write(&wav, &original).unwrap();
    let second = archive::encode_file(&wav).expect("re-encodes");
    assert_eq!(first, second);
    // Killed after the WAV was removed, before the row was updated: the Opus file is recognised.
    let third = archive::encode_file(&wav).expect("recognises the Opus file");
    assert_eq!(first, third);
    std::fs::remove_file(wav.with_extension("opus")).unwrap();
    assert_eq!(archive::encode_file(&wav).unwrap(), Outcome::Missing);
    // A file that is not a recording is an error, and stays.
    std::fs::write(&wav, b"not a wav").unwrap();
    assert!(archive::encode_file(&wav).is_err());
    assert!(wav.exists());
}

struct Fixture {
    db: Db,
    tenant: i64,
    tz: chrono_tz::Tz,
    dir: tempfile::TempDir,
    _db_dir: Option<tempfile::TempDir>,
}

async fn fixture(backend: Backend) -> Fixture {
    let (db, db_dir) = store::testing::fresh_db(backend).await;
    let code = format!("rec{:x}", rand::random::<u32>());
    let tenant = store::tenancy::create_tenant(&db, &code, "rec", "Asia/Tokyo", 0).await.unwrap();
    let tz = store::tenancy::parse_tz("Asia/Tokyo").unwrap();
    Fixture { db, tenant, tz, dir: tempfile::tempdir().unwrap(), _db_dir: db_dir }
}

impl Fixture {
    /// An ended call record with `dialer_call_id`, and its recording closed as the dialer would.
    async fn recorded_call(&self, dialer_call_id: i64, started_at_ms: i64, seconds: usize) -> (i64, PathBuf) {
        sqlx::query(
            "INSERT INTO call_records (tenant_id, tel, started_at, ended_at, result, dialer_call_id) VALUES ($1, '0311112222', $2, $3, 'no_entry', $4)",
        )
        .bind(self.tenant)
        .bind(started_at_ms)
        .bind(started_at_ms + i64::try_from(seconds).unwrap() * 1000)
        .bind(dialer_call_id)
        .execute(&self.db.pool)
        .await
        .unwrap();
        let path = recs::recording_path(self.dir.path(), self.tenant, self.tz, started_at_ms, dialer_call_id);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        record_tones(&path, seconds, Codec::Pcmu);
        let bytes = std::fs::metadata(&path).unwrap().len();
        let id = recs::closed(
            &self.db,
            &NewRecording {
                tenant_id: self.tenant,
                dialer_call_id,
                path: path.to_string_lossy().into_owned(),
                bytes: bytes as i64,
                duration_ms: recording::duration_ms(bytes) as i64,
                started_at_ms,
                closed_at_ms: started_at_ms + seconds as i64 * 1000,
            },
        )
        .await
        .unwrap();
        (id, path)
    }

    fn archiver(&self, name: &str) -> Archiver {
        Archiver::new(
            self.db.clone(),
            ArchiveConfig { workers: 2, name: name.into(), poll: Duration::from_millis(50), ..Default::default() },
        )
    }
}

const DAY_MS: i64 = 86_400_000;
/// 2026-11-22 10:00 in Tokyo.
const T0: i64 = 1_795_309_200_000;

async fn pool_encodes_what_the_dialer_recorded(backend: Backend) {
    let f = fixture(backend).await;
    let (id, wav) = f.recorded_call(9001, T0, 4).await;
    // The same report twice (a dialer retry) is one row.
    let r = recs::get(&f.db, f.tenant, id).await.unwrap();
    let retry = NewRecording {
        tenant_id: f.tenant,
        dialer_call_id: 9001,
        path: r.path,
        bytes: r.bytes,
        duration_ms: r.duration_ms,
        started_at_ms: T0,
        closed_at_ms: r.closed_at,
    };
    let again = recs::closed(&f.db, &retry).await.unwrap();
    assert_eq!(again, id);
    let r = recs::get(&f.db, f.tenant, id).await.unwrap();
    assert_eq!((r.format, r.local_date.as_str(), r.duration_ms), (Format::Wav, "2026-11-22", 4000));
    assert!(r.call_record_id.is_some(), "linked to the call record by dialer_call_id");
    assert!(wav.ends_with(format!("{}/2026-11-22/9001.wav", f.tenant)), "{}", wav.display());
    let stats = f.archiver("enc-a").run_until_idle().await.unwrap();
    assert_eq!((stats.encoded, stats.failed, stats.audio_ms), (1, 0, 4000));
    let r = recs::get(&f.db, f.tenant, id).await.unwrap();
    assert_eq!(r.format, Format::Opus);
    assert!(r.encoded_at.is_some());
    assert!(r.path.ends_with("9001.opus"));
    assert_eq!(r.bytes as u64, std::fs::metadata(&r.path).unwrap().len(), "bytes is the file's size");
    assert!(!wav.exists());
    let call_path: Option<String> =
        sqlx::query("SELECT recording_path FROM call_records WHERE tenant_id = $1 AND dialer_call_id = 9001")
            .bind(f.tenant)
            .fetch_one(&f.db.pool)
            .await
            .unwrap()
            .try_get("recording_path")
            .unwrap();
    assert_eq!(call_path.as_deref(), Some(r.path.as_str()));
    let d = opus::decode(&std::fs::read(&r.path).unwrap()).unwrap();
    assert_eq!(d.customer.len(), 32_000);
    assert_channels_separate(&d);
    // Nothing left to do.
    assert_eq!(f.archiver("enc-a").run_until_idle().await.unwrap().encoded, 0);
}

async fn a_call_in_progress_is_encoded_once_it_ends(backend: Backend) {
    let f = fixture(backend).await;
    let (id, _) = f.recorded_call(9004, T0, 1).await;
    // Transferred: its first part closed, the call goes on with a colleague (more may be appended).
    let ongoing = |ended: Option<i64>| {
        sqlx::query("UPDATE call_records SET ended_at = $1 WHERE tenant_id = $2 AND dialer_call_id = 9004")
            .bind(ended)
            .bind(f.tenant)
            .execute(&f.db.pool)
    };
    ongoing(None).await.unwrap();
    assert_eq!(f.archiver("enc-a").run_until_idle().await.unwrap().encoded, 0, "not while the call goes on");
    assert_eq!(recs::get(&f.db, f.tenant, id).await.unwrap().format, Format::Wav);
    ongoing(Some(T0 + 5_000)).await.unwrap();
    assert_eq!(f.archiver("enc-a").run_until_idle().await.unwrap().encoded, 1, "once it has ended");
    assert_eq!(recs::get(&f.db, f.tenant, id).await.unwrap().format, Format::Opus);
}

async fn a_pool_killed_mid_encode_loses_nothing(backend: Backend) {
    let f = fixture(backend).await;
    let (id, wav) = f.recorded_call(9002, T0, 2).await;
    // An encoder took the row and died mid-encode (a partial temporary file, the claim held).
    let claimed = recs::claim_for_encoding(&f.db, "enc-b", store::now_ms(), 600_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    std::fs::write(wav.with_extension("opus.tmp"), b"OggS").unwrap();
    // Another encoder leaves the leased row alone.
    assert_eq!(f.archiver("enc-other").run_until_idle().await.unwrap().encoded, 0);
    assert!(wav.exists(), "the WAV stays until the Opus file is durable");
    // The same encoder restarted takes its claim back at once and encodes it.
    let stats = f.archiver("enc-b").run_until_idle().await.unwrap();
    assert_eq!(stats.encoded, 1);
    let r = recs::get(&f.db, f.tenant, id).await.unwrap();
    assert_eq!(r.format, Format::Opus);
    assert_eq!(opus::samples_of(&std::fs::read(&r.path).unwrap()).unwrap(), 16_000);
    // A row whose files are both gone is marked deleted, not retried forever.
    let (gone, wav) = f.recorded_call(9003, T0 + 1000, 1).await;
    std::fs::remove_file(&wav).unwrap();
    assert_eq!(f.archiver("enc-b").run_until_idle().await.unwrap().missing, 1);
    assert_eq!(recs::get(&f.db, f.tenant, gone).await.unwrap().deleted_reason.as_deref(), Some("missing"));
}

async fn past_the_quota_the_oldest_recordings_go_first(backend: Backend) {
    let f = fixture(backend).await;
    // Five calls on five days, newest last; encode them all first.
    let mut ids = Vec::new();
    for d in 0..5 {
        ids.push(f.recorded_call(100 + d, T0 + d * DAY_MS, 2).await.0);
    }
    f.archiver("enc-q").run_until_idle().await.unwrap();
    let usage = recs::usage(&f.db, f.tenant).await.unwrap();
    assert_eq!(usage.recordings, 5);
    let sizes: Vec<i64> = {
        let mut v = Vec::new();
        for id in &ids {
            v.push(recs::get(&f.db, f.tenant, *id).await.unwrap().bytes);
        }
        v
    };
    assert_eq!(usage.bytes, sizes.iter().sum::<i64>());
    // A quota that holds three and a half of them.
    let quota = sizes[2] + sizes[3] + sizes[4] + sizes[0] / 2;
    sqlx::query("UPDATE tenants SET recording_quota_bytes = $1 WHERE id = $2")
        .bind(quota)
        .bind(f.tenant)
        .execute(&f.db.pool)
        .await
        .unwrap();
    // A sixth call pushes it over: its encoding triggers the accounting.
    let (sixth, _) = f.recorded_call(200, T0 + 5 * DAY_MS, 2).await;
    let stats = f.archiver("enc-q").run_until_idle().await.unwrap();
    assert_eq!(stats.encoded, 1);
    assert_eq!(stats.deleted_for_quota, 3, "the oldest three go: the newest three fit");
    for (i, id) in ids.iter().enumerate() {
        let r = recs::get(&f.db, f.tenant, *id).await.unwrap();
        if i < 3 {
            assert_eq!(r.deleted_reason.as_deref(), Some("quota"), "recording {i}");
            assert!(!Path::new(&r.path).exists(), "its file is removed");
        } else {
            assert!(r.deleted_at.is_none(), "recording {i} kept");
            assert!(Path::new(&r.path).exists());
        }
    }
    assert!(recs::get(&f.db, f.tenant, sixth).await.unwrap().deleted_at.is_none());
    let after = recs::usage(&f.db, f.tenant).await.unwrap();
    assert!(after.bytes <= quota, "{} over {quota}", after.bytes);
    assert_eq!(after.recordings, 3);
    let (listed, total) =
        recs::list(&f.db, f.tenant, &recs::ListFilter { limit: 50, ..Default::default() }).await.unwrap();
    assert_eq!(total, 3);
    assert_eq!(listed[0].id, sixth, "newest first");
    assert!(recs::to_purge(&f.db, 10).await.unwrap().is_empty(), "every deleted file is purged");
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(store::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(store::Backend::Postgres).await
            }
        }
    )*};
}

both!(
    pool_encodes_what_the_dialer_recorded,
    a_call_in_progress_is_encoded_once_it_ends,
    a_pool_killed_mid_encode_loses_nothing,
    past_the_quota_the_oldest_recordings_go_first
);
