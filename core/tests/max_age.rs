//! Maximum connection age and grace on kas's agent listener.

mod common;

use std::time::Duration;

use common::*;
use kasim_core::agentk::PoolConfig;
use kasim_core::kas::listener::ListenerOptions;
use kasim_core::proto::grpctool::test::{HoldRequest, Request};
use kasim_core::transport::Connect;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const GOAWAY: u8 = 0x7;
const SETTINGS: u8 = 0x4;

/// Reads one HTTP/2 frame: (type, flags, stream id, payload).
async fn read_frame(io: &mut (impl AsyncReadExt + Unpin)) -> std::io::Result<(u8, u8, u32, Vec<u8>)> {
    let mut h = [0u8; 9];
    io.read_exact(&mut h).await?;
    let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
    let mut payload = vec![0u8; len];
    io.read_exact(&mut payload).await?;
    Ok((h[3], h[4], u32::from_be_bytes([h[5] & 0x7f, h[6], h[7], h[8]]), payload))
}

/// Frame level: a bare HTTP/2 client sees GOAWAY at the maximum age, not before.
#[tokio::test(start_paused = true)]
async fn goaway_frame_is_sent_at_max_age() {
    let w = World::new();
    let opts = ListenerOptions {
        max_connection_age: Some(Duration::from_secs(30)),
        max_connection_age_grace: Duration::from_secs(15),
        keepalive_interval: None,
    };
    let _kas = w.kas("kas", opts);
    let mut io = w.net.connector().connect("kas:8150").await.unwrap();
    let start = tokio::time::Instant::now();
    io.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    io.write_all(&[0, 0, 0, SETTINGS, 0, 0, 0, 0, 0]).await.unwrap();
    let mut goaway = None;
    while goaway.is_none() {
        let (ty, flags, stream, payload) = read_frame(&mut io).await.unwrap();
        if ty == SETTINGS && flags & 1 == 0 {
            io.write_all(&[0, 0, 0, SETTINGS, 1, 0, 0, 0, 0]).await.unwrap();
        }
        if ty == GOAWAY {
            assert_eq!(stream, 0);
            goaway = Some((start.elapsed(), u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]])));
        }
    }
    let (at, error_code) = goaway.unwrap();
    assert!(at >= Duration::from_secs(30) && at < Duration::from_secs(31), "GOAWAY at {at:?}");
    assert_eq!(error_code, 0, "NO_ERROR: a graceful GOAWAY");
}

/// Behaviour: at the age, in-flight forwarding continues, idle tunnels end with OK and agentk
/// re-dials on a new connection; at age + grace the old connection is closed.
#[tokio::test(start_paused = true)]
async fn in_flight_calls_finish_within_grace_and_idle_tunnels_move_to_a_new_connection() {
    let w = World::new();
    let opts = ListenerOptions {
        max_connection_age: Some(Duration::from_secs(60)),
        max_connection_age_grace: Duration::from_secs(30),
        keepalive_interval: None,
    };
    let kas = w.kas("kas", opts);
    let start = tokio::time::Instant::now();
    let agent = w.agentk("kas", TOKEN, PoolConfig::default(), 5);
    eventually(Duration::from_secs(5), || kas.registry().stats(AGENT_ID).idle == 2).await;
    assert_eq!(w.net.dial_count("kas:8150"), 1, "all tunnels share one HTTP/2 connection");

    tokio::time::sleep(Duration::from_secs(50)).await;
    let mut c1 = client(&kas);
    let within_grace = tokio::spawn(async move { c1.hold(HoldRequest { hold_millis: 20_000 }).await });
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut c2 = client(&kas);
    let beyond_grace =
        tokio::spawn(async move { (c2.hold(HoldRequest { hold_millis: 60_000 }).await, tokio::time::Instant::now()) });

    // t = 55 s; the age passes at 60 s.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(w.net.dial_count("kas:8150"), 2, "idle tunnels re-dialled on a new connection after GOAWAY");
    assert!(agent.stats().errors <= 1, "re-dial after an OK end is immediate, at most one refused stream");
    let ok = client(&kas).request_response(Request { s1: "new conn".into(), payload: vec![] }).await.unwrap();
    assert_eq!(ok.into_inner().s1, "new conn");

    assert_eq!(within_grace.await.unwrap().unwrap().into_inner().s1, "held", "finished inside the grace");
    let (cut, cut_at) = beyond_grace.await.unwrap();
    let cut = cut.unwrap_err();
    assert_ne!(cut.code(), tonic::Code::Ok);
    let cut_at = cut_at - start;
    assert!(
        cut_at >= Duration::from_secs(90) && cut_at < Duration::from_secs(91),
        "closed at age + grace, got {cut_at:?}"
    );
}
