//! The same kas and agentk code inside turmoil: kas is bounced (crashed and restarted) and agentk
//! reconnects and serves again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kasim_core::agentk::{AgentServices, Agentk, AgentkOptions, PoolConfig};
use kasim_core::kas::gitlab::{AgentInfo, StaticGitLab};
use kasim_core::kas::listener::ListenerOptions;
use kasim_core::kas::router::Router;
use kasim_core::kas::tracker::{InMemoryTracker, StaticTracker};
use kasim_core::kas::{Kas, KasOptions};
use kasim_core::proto::grpctool::test::Request;
use kasim_core::proto::grpctool::test::testing_client::TestingClient;
use kasim_core::testing_service::TestingService;
use kasim_sim::clock::SimClock;
use kasim_sim::net::{SimConnector, SimListener};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "glagent-simsimsimsimsimsimsimsimsimsimsimsimsimsimsimsimsim";

fn sim(seed: u64) -> turmoil::Sim<'static> {
    turmoil::Builder::new()
        .simulation_duration(Duration::from_secs(600))
        .tick_duration(Duration::from_millis(10))
        .rng_seed(seed)
        .build()
}

fn kas_host(sim: &mut turmoil::Sim<'static>) {
    let tracker = Arc::new(InMemoryTracker::new(Arc::new(SimClock::default())));
    sim.host("kas", move || {
        let tracker = tracker.clone();
        async move {
            let gitlab = Arc::new(StaticGitLab::new([(
                TOKEN.to_owned(),
                AgentInfo { id: 1, project_id: 150, name: "prod".into(), default_branch: "main".into() },
            )]));
            let kas = Kas::new(
                gitlab,
                tracker,
                Arc::new(SimConnector),
                KasOptions {
                    private_api_url: Some("grpc://kas:8155".into()),
                    agent_listener: ListenerOptions::agent_default(),
                },
            );
            let agents = SimListener::bind(8150, "kas").await?;
            let private = SimListener::bind(8155, "kas").await?;
            let s = CancellationToken::new();
            let (k1, k2) = (kas.clone(), kas.clone());
            let s2 = s.clone();
            tokio::spawn(async move { k1.serve_agents(Box::new(agents), s2).await });
            tokio::spawn(async move { k2.serve_private_api(Box::new(private), s.clone()).await });
            kas.run_tracker(CancellationToken::new()).await;
            Ok(())
        }
    });
}

fn agentk_host(sim: &mut turmoil::Sim<'static>, seed: u64) {
    sim.host("agentk", move || async move {
        let agent = Agentk::new(
            AgentkOptions {
                kas_authority: "kas:8150".into(),
                token: TOKEN.into(),
                services: AgentServices::default().add(TestingService::server()),
                pool: PoolConfig::default(),
                seed,
                version: "v18.6.0".into(),
                commit: "sim".into(),
            },
            Arc::new(SimConnector),
            CancellationToken::new(),
        )?;
        agent.start();
        std::future::pending::<()>().await;
        Ok(())
    });
}

/// Calls the agent through kas every second; records (virtual ms, ok?) per call.
fn driver(sim: &mut turmoil::Sim<'static>, log: Arc<Mutex<Vec<(u128, bool)>>>, done: Arc<Mutex<bool>>) {
    sim.client("driver", async move {
        let router = Router::with_timeout(
            kasim_core::tunnel::registry::Registry::default(),
            Arc::new(StaticTracker::new(vec!["grpc://kas:8155".into()])),
            None,
            Arc::new(SimConnector),
            Duration::from_secs(5),
        );
        while !*done.lock().unwrap() {
            let mut c = TestingClient::new(router.channel(1));
            let ok = c.request_response(Request { s1: "ping".into(), payload: vec![] }).await.is_ok();
            log.lock().unwrap().push((turmoil::sim_elapsed().unwrap_or_default().as_millis(), ok));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Ok(())
    });
}

#[test]
fn agentk_reconnects_and_serves_again_after_kas_bounces() {
    let seed = std::env::var("KASIM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(7);
    println!("seed {seed}; replay: KASIM_SEED={seed} cargo test -p kasim-sim --test bounce");
    let mut sim = sim(seed);
    let log = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(Mutex::new(false));
    kas_host(&mut sim);
    agentk_host(&mut sim, seed);
    driver(&mut sim, log.clone(), done.clone());

    let ok_count = |log: &Mutex<Vec<(u128, bool)>>| log.lock().unwrap().iter().filter(|(_, ok)| *ok).count();
    while ok_count(&log) < 3 {
        sim.step().unwrap();
    }
    let bounced_at = sim.elapsed().as_millis();
    sim.bounce("kas");
    let before = ok_count(&log);
    while ok_count(&log) < before + 3 {
        assert!(sim.elapsed() < Duration::from_secs(300), "agentk never served again: {:?}", log.lock().unwrap());
        sim.step().unwrap();
    }
    *done.lock().unwrap() = true;
    sim.run().unwrap();
    let log = log.lock().unwrap();
    let failures_after_bounce = log.iter().filter(|(t, ok)| *t > bounced_at && !ok).count();
    let first_ok_after = log.iter().find(|(t, ok)| *t > bounced_at && *ok).unwrap().0;
    println!(
        "bounced at {bounced_at} ms; failed calls after: {failures_after_bounce}; served again at {first_ok_after} ms"
    );
    // agentk's tunnels broke with the bounce and backed off (≥1 s), so service resumes after a gap.
    assert!(first_ok_after > bounced_at + 500, "served again suspiciously early");
    assert!(first_ok_after < bounced_at + 60_000, "reconnect took too long");
}
