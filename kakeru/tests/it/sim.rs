//! `kakeru sim`: the simulated carrier as a process of its own answers SIP on the address given.

use std::net::SocketAddr;
use std::time::Duration;

use crate::process::Role;

#[test]
fn the_simulated_carrier_runs_as_its_own_process_and_answers_an_invite() {
    let mut p = Role::start(&["sim", "--carrier-listen", "127.0.0.1:0", "--answer-prob", "1"], &[]);
    let line = p.wait_line("carrier SIP on ");
    let addr: SocketAddr = line.rsplit(' ').next().expect("address").parse().expect("a socket address");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("socket");
    sock.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let me = sock.local_addr().expect("local");
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    let invite = format!(
        "INVITE sip:0312345678@{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-sim-test-1\r\nMax-Forwards: 70\r\n\
         From: <sip:kakeru@127.0.0.1>;tag=t1\r\nTo: <sip:0312345678@{addr}>\r\nCall-ID: sim-test-1@127.0.0.1\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:kakeru@{me}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    sock.send_to(invite.as_bytes(), addr).expect("send");
    let mut buf = [0u8; 4096];
    let (n, from) = sock.recv_from(&mut buf).expect("an answer to the INVITE");
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert_eq!(from, addr);
    assert!(answer.starts_with("SIP/2.0 1") || answer.starts_with("SIP/2.0 2"), "{answer}");
    assert!(answer.contains("sim-test-1@127.0.0.1"), "{answer}");
    p.interrupt();
    p.wait_line("carrier stopped");
}

#[test]
fn kakeru_sim_with_nothing_to_run_says_so() {
    let mut p = Role::start(&["sim"], &[]);
    p.wait_line("nothing to run");
}
