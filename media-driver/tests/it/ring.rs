//! `UdpRing` (the io_uring driver's datagram ring) against real sockets on loopback.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use media::rtp::MAX_DATAGRAM_LEN;
use media_driver::ring::{self, Completion, RingConfig, UdpRing};

fn bind() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.set_nonblocking(true).expect("nonblocking");
    let s2 = socket2::SockRef::from(&s);
    let _ = s2.set_recv_buffer_size(4 << 20);
    s
}

/// A ring, where the kernel gives one (elsewhere the shard runs on epoll, tested on its own).
/// A ring; a kernel without io_uring fails the test (production falls back to epoll, but the ring's
/// own tests never pass by skipping).
fn ring_here(config: RingConfig) -> UdpRing {
    if let Err(e) = ring::probe() {
        panic!("io_uring unavailable here ({e}): these tests need it");
    }
    UdpRing::new(config).expect("ring")
}

/// Datagrams received within `within`: (token, from, bytes).
fn collect(ring: &mut UdpRing, want: usize, within: Duration) -> Vec<(u64, SocketAddr, Vec<u8>)> {
    let until = Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < until {
        ring.submit_and_wait(Duration::from_millis(20)).expect("wait");
        ring.complete(|c| {
            if let Completion::Datagram { token, from, data, .. } = c {
                got.push((token, from, data.to_vec()));
            }
        });
    }
    got
}

#[test]
fn every_datagram_arrives_once_even_when_the_buffers_run_out() {
    // 8 buffers for 2,000 datagrams: the multishot receive ends on ENOBUFS many times over and
    // must be armed again each time, losing nothing (the datagrams wait in the socket queue).
    let mut ring = ring_here(RingConfig { sq_entries: 64, recv_buffers: 8, send_slots: 64, rx_timestamps: false });
    let rx = bind();
    let tx = bind();
    ring.recv(rx.as_raw_fd(), 7);
    let to = rx.local_addr().unwrap();
    for i in 0..2000u32 {
        tx.send_to(&i.to_be_bytes(), to).expect("send");
    }
    let got = collect(&mut ring, 2000, Duration::from_secs(10));
    assert_eq!(got.len(), 2000, "every datagram once");
    let mut seqs: Vec<u32> = got.iter().map(|(_, _, b)| u32::from_be_bytes(b[..4].try_into().unwrap())).collect();
    assert!(got.iter().all(|(t, from, _)| *t == 7 && *from == tx.local_addr().unwrap()));
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 2000, "no duplicates");
}

#[test]
fn sends_go_out_from_the_given_socket_and_a_long_datagram_reads_as_too_long() {
    let mut ring = ring_here(RingConfig::default());
    let a = bind();
    let b = bind();
    ring.recv(b.as_raw_fd(), 1);
    // Ring → a, from b's socket.
    for i in 0..100u8 {
        ring.send_to(b.as_raw_fd(), a.local_addr().unwrap(), vec![i; 172]).expect("slot");
    }
    ring.submit_and_wait(Duration::ZERO).expect("submit");
    let mut buf = [0u8; 2048];
    let mut seen = 0;
    let until = Instant::now() + Duration::from_secs(5);
    while seen < 100 && Instant::now() < until {
        match a.recv_from(&mut buf) {
            Ok((n, from)) => {
                assert_eq!((n, from), (172, b.local_addr().unwrap()));
                seen += 1;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    assert_eq!(seen, 100);
    // A datagram longer than any RTP packet reaches the caller one byte too long, never cut to
    // a plausible length.
    a.send_to(&vec![0u8; MAX_DATAGRAM_LEN + 500], b.local_addr().unwrap()).expect("send");
    let got = collect(&mut ring, 1, Duration::from_secs(5));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].2.len(), MAX_DATAGRAM_LEN + 1);
}

#[test]
fn a_cancelled_receive_delivers_nothing_more_and_its_socket_can_be_armed_anew() {
    let mut ring = ring_here(RingConfig::default());
    let rx = bind();
    let tx = bind();
    let to = rx.local_addr().unwrap();
    ring.recv(rx.as_raw_fd(), 1);
    tx.send_to(b"one", to).unwrap();
    assert_eq!(collect(&mut ring, 1, Duration::from_secs(5)).len(), 1);
    ring.cancel(1);
    tx.send_to(b"two", to).unwrap();
    let after_cancel = collect(&mut ring, 1, Duration::from_millis(300));
    assert!(after_cancel.is_empty(), "cancelled: {after_cancel:?}");
    // The same socket under a new token gets what waited in its queue, and what comes next.
    ring.recv(rx.as_raw_fd(), 2);
    tx.send_to(b"three", to).unwrap();
    let got = collect(&mut ring, 2, Duration::from_secs(5));
    let texts: Vec<&[u8]> = got
        .iter()
        .map(|(t, _, b)| {
            assert_eq!(*t, 2);
            b.as_slice()
        })
        .collect();
    assert_eq!(texts, vec![&b"two"[..], &b"three"[..]]);
}

#[test]
fn a_waker_ends_the_wait_from_another_thread() {
    let mut ring = ring_here(RingConfig::default());
    let waker = ring.waker().expect("waker");
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        waker.wake();
    });
    let start = Instant::now();
    let mut woken = false;
    while !woken && start.elapsed() < Duration::from_secs(5) {
        ring.submit_and_wait(Duration::from_secs(5)).expect("wait");
        ring.complete(|c| woken |= matches!(c, Completion::Woken));
    }
    t.join().unwrap();
    assert!(woken);
    assert!(start.elapsed() < Duration::from_secs(2), "woken, not timed out: {:?}", start.elapsed());
}

#[test]
fn with_rx_timestamps_each_datagram_carries_its_arrival_and_is_whole() {
    let config = RingConfig { rx_timestamps: true, ..RingConfig::default() };
    let mut ring = ring_here(config);
    let (rx, tx) = (bind(), bind());
    ring.recv(rx.as_raw_fd(), 3);
    let since_epoch = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970");
    let before = since_epoch();
    // The largest datagram the shard takes: the control data must not eat into it.
    for i in 0..50u8 {
        tx.send_to(&vec![i; MAX_DATAGRAM_LEN], rx.local_addr().unwrap()).expect("send");
    }
    let until = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    while got.len() < 50 && Instant::now() < until {
        ring.submit_and_wait(Duration::from_millis(20)).expect("wait");
        ring.complete(|c| {
            if let Completion::Datagram { data, arrived, .. } = c {
                got.push((data.to_vec(), arrived));
            }
        });
    }
    let after = since_epoch();
    assert_eq!(got.len(), 50);
    for (i, (data, arrived)) in got.iter().enumerate() {
        assert_eq!(data, &vec![i as u8; MAX_DATAGRAM_LEN], "datagram {i} whole and in order");
        let at = arrived.expect("the kernel's arrival time");
        assert!(before <= at && at <= after, "arrival {at:?} outside {before:?}..{after:?}");
    }
}
