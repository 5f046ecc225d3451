//! agentk's pool under load, in virtual time: scale-up in steps of 10, a cap of 500 tunnel streams
//! under 600 concurrent long calls, queueing of the excess at kas, and idle shrink after 1 minute.

mod common;

use std::time::Duration;

use common::*;
use kasim_core::agentk::PoolConfig;
use kasim_core::kas::listener::ListenerOptions;
use kasim_core::proto::grpctool::test::HoldRequest;

#[tokio::test(start_paused = true)]
async fn six_hundred_long_calls_never_exceed_500_streams_and_all_complete() {
    let w = World::new();
    let kas = w.kas("kas", ListenerOptions::agent_default());
    let agent = w.agentk("kas", TOKEN, PoolConfig::default(), 3);
    eventually(Duration::from_secs(5), || kas.registry().stats(AGENT_ID).idle == 2).await;
    assert_eq!(agent.stats().total(), 2);

    let start = tokio::time::Instant::now();
    let mut calls = Vec::new();
    for _ in 0..600 {
        let mut c = client(&kas);
        calls.push(tokio::spawn(async move {
            c.hold(HoldRequest { hold_millis: 10_000 }).await.map(|_| tokio::time::Instant::now())
        }));
    }
    // Watch the kas side while the calls run: never more than 500 streams of this agent.
    let mut max_connected = 0;
    let mut max_waiting = 0;
    for _ in 0..300 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let s = kas.registry().stats(AGENT_ID);
        max_connected = max_connected.max(s.connected);
        max_waiting = max_waiting.max(s.waiting);
        assert!(s.connected <= 500, "{s:?}");
        assert!(agent.stats().total() <= 500);
    }
    let mut finished = Vec::new();
    for c in calls {
        finished.push(c.await.unwrap().unwrap() - start);
    }
    assert_eq!(max_connected, 500, "the pool reached its cap");
    assert!(max_waiting >= 100, "the excess queued at kas (max waiting {max_waiting})");
    let first_wave = finished.iter().filter(|d| **d < Duration::from_secs(11)).count();
    let second_wave = finished.iter().filter(|d| **d >= Duration::from_secs(20)).count();
    assert_eq!(first_wave, 500, "500 calls run at once");
    assert_eq!(second_wave, 100, "100 wait for a tunnel to free, then hold 10 s more");
    let stats = agent.stats();
    assert_eq!(stats.max_total, 500);
    assert!(stats.scale_ups[..stats.scale_ups.len() - 1].iter().all(|s| *s == 10), "{:?}", stats.scale_ups);
    assert_eq!(stats.scale_ups.iter().sum::<usize>() + 2, 500);

    // Idle shrink: more than 2 idle tunnels close after a minute idle, down to the minimum.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(agent.stats().idle > 400, "not closed before a minute of idleness");
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(agent.stats().total(), 2);
    assert_eq!(agent.stats().idle_closed, 498);
    eventually(Duration::from_secs(5), || kas.registry().stats(AGENT_ID).connected == 2).await;
}

#[tokio::test(start_paused = true)]
async fn a_broken_cap_is_visible() {
    // The same load with the cap raised shows more than 500 streams at kas: the assertion above
    // would catch a pool that ignored its limit.
    let w = World::new();
    let kas = w.kas("kas", ListenerOptions::agent_default());
    let _agent = w.agentk("kas", TOKEN, PoolConfig { max_connections: 700, ..PoolConfig::default() }, 3);
    let mut calls = Vec::new();
    for _ in 0..600 {
        let mut c = client(&kas);
        calls.push(tokio::spawn(async move { c.hold(HoldRequest { hold_millis: 5_000 }).await }));
    }
    let mut max_connected = 0;
    for _ in 0..80 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        max_connected = max_connected.max(kas.registry().stats(AGENT_ID).connected);
    }
    for c in calls {
        c.await.unwrap().unwrap();
    }
    assert!(max_connected > 500, "{max_connected}");
}
