//! A recording cut at any point (kill -9) still opens with its samples so far.

use std::time::Duration;

use media::recording::{self, read_recording, RecordingError, HEADER_LEN};
use media::{Codec, RecordingId};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::harness::{packet, Sim};

const CUSTOMER_BYTE: u8 = 0x10;
const AGENT_BYTE: u8 = 0x20;

fn record_call(codec: Codec, packets: usize) -> (Vec<recording::FileWrite>, Vec<u8>) {
    let mut sim = Sim::new(|c| c.recording_header_every_ms = 200);
    let agent = sim.leg(false, codec, false);
    let cust = sim.leg(true, codec, false);
    sim.call.set_agent(sim.now, agent);
    sim.call.set_customer(sim.now, cust);
    sim.call.start_recording(sim.now, RecordingId(7), codec);
    let pt = codec.payload_type();
    for i in 0..packets {
        sim.receive(true, &packet(pt, false, i as u16, 160 * i as u32, 1, &[CUSTOMER_BYTE; 160]));
        sim.receive(false, &packet(pt, false, 9 + i as u16, 160 * i as u32, 2, &[AGENT_BYTE; 160]));
        sim.advance(Duration::from_millis(20));
    }
    sim.call.take_customer(sim.now);
    let mut ops = Vec::new();
    for (id, op) in sim.take_writes() {
        assert_eq!(id, RecordingId(7));
        ops.push(op);
    }
    let mut file = std::io::Cursor::new(Vec::new());
    for op in &ops {
        recording::apply(&mut file, op).expect("invariant: in-memory writes succeed");
    }
    (ops, file.into_inner())
}

#[test]
fn complete_recording_has_both_channels_separate() {
    for codec in [Codec::Pcmu, Codec::Pcma] {
        let (_, file) = record_call(codec, 150);
        let r = read_recording(&file).expect("complete file parses");
        assert_eq!(r.codec, codec);
        assert_eq!(r.declared_frames as usize, r.customer.len());
        let count = |ch: &[u8], b: u8| ch.iter().filter(|&&x| x == b).count();
        assert_eq!(count(&r.customer, CUSTOMER_BYTE), 150 * 160, "every customer sample recorded");
        assert_eq!(count(&r.agent, AGENT_BYTE), 150 * 160, "every agent sample recorded");
        assert!(r.customer.iter().all(|&b| b == CUSTOMER_BYTE || b == codec.silence()));
        assert!(r.agent.iter().all(|&b| b == AGENT_BYTE || b == codec.silence()));
    }
}

/// kill -9 after any completed write: the header never claims more than the file holds, so any
/// WAV reader plays it, and our reader recovers every frame written.
#[test]
fn killed_after_any_write_is_a_valid_wav() {
    let (ops, full) = record_call(Codec::Pcmu, 300);
    assert!(ops.len() > 20);
    let mut file = std::io::Cursor::new(Vec::new());
    let full_rec = read_recording(&full).expect("complete file parses");
    for op in &ops {
        recording::apply(&mut file, op).expect("invariant: in-memory writes succeed");
        let bytes = file.get_ref();
        let r = read_recording(bytes).expect("every prefix of writes parses");
        let declared_len = HEADER_LEN as u64 + 2 * r.declared_frames;
        assert!(declared_len <= bytes.len() as u64, "header claims {declared_len} > {}", bytes.len());
        let riff = u32::from_le_bytes(bytes[4..8].try_into().expect("invariant: 4 bytes")) as u64;
        assert_eq!(riff + 8, declared_len, "RIFF size agrees with data size");
        assert_eq!(r.customer[..], full_rec.customer[..r.customer.len()]);
        assert_eq!(r.agent[..], full_rec.agent[..r.agent.len()]);
    }
}

/// A file cut at an arbitrary byte (a torn write) opens with its whole frames so far.
#[test]
fn cut_at_arbitrary_byte_opens_with_samples_so_far() {
    let (_, full) = record_call(Codec::Pcma, 300);
    let full_rec = read_recording(&full).expect("complete file parses");
    let mut rng = ChaCha8Rng::seed_from_u64(0x0CE7);
    let cuts = (0..HEADER_LEN + 600).chain((0..2000).map(|_| rng.gen_range(HEADER_LEN..=full.len())));
    for cut in cuts {
        match read_recording(&full[..cut]) {
            Ok(r) => {
                assert!(cut >= HEADER_LEN);
                assert_eq!(r.customer.len(), (cut - HEADER_LEN) / 2);
                assert_eq!(r.customer[..], full_rec.customer[..r.customer.len()]);
                assert_eq!(r.agent[..], full_rec.agent[..r.agent.len()]);
            }
            Err(RecordingError::ShortHeader(n)) => assert!(n < HEADER_LEN && cut < HEADER_LEN),
            Err(e) => panic!("cut at {cut}: {e}"),
        }
    }
}

/// The same through a real file on disk, written with `std::fs` and read back.
#[test]
fn recording_on_disk() {
    let (ops, _) = record_call(Codec::Pcmu, 50);
    let dir = std::env::temp_dir().join(format!("kakeru-media-rec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("call.wav");
    let mut f =
        std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path).expect("create");
    for op in &ops[..ops.len() / 2] {
        recording::apply(&mut f, op).expect("write");
    }
    drop(f); // the "kill": no finish, no final header
    let bytes = std::fs::read(&path).expect("read back");
    let r = read_recording(&bytes).expect("half-written file parses");
    assert!(!r.customer.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}
