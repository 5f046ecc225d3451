//! Receptive agents inside turmoil: kas dials a receptive agentk (JWT-authenticated) while a normal
//! agentk dials kas; a routing kas (the driver) reaches both through kas's private API. The
//! receptive agentk is then bounced, and kas reaches it again on its own.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kasim_core::agentk::receptive::{self, AgentMeta};
use kasim_core::agentk::{AgentServices, Agentk, AgentkOptions, PoolConfig};
use kasim_core::kas::gitlab::{AgentInfo, StaticGitLab};
use kasim_core::kas::listener::ListenerOptions;
use kasim_core::kas::receptive::{
    ReceptiveAgent, ReceptiveAgents, ReceptiveAuth, ReceptiveOptions, StaticReceptiveAgents, public_key_for,
};
use kasim_core::kas::router::Router;
use kasim_core::kas::tracker::{InMemoryTracker, StaticTracker};
use kasim_core::kas::{Kas, KasOptions};
use kasim_core::proto::grpctool::test::Request;
use kasim_core::proto::grpctool::test::testing_client::TestingClient;
use kasim_core::testing_service::TestingService;
use kasim_sim::clock::SimClock;
use kasim_sim::net::{SimConnector, SimListener};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "glagent-normalnormalnormalnormalnormalnormalnormalnormalnorm";
const NORMAL: i64 = 1;
const RECEPTIVE: i64 = 2;
const KEY: [u8; 32] = [7; 32];

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
                AgentInfo { id: NORMAL, project_id: 150, name: "normal".into(), default_branch: "main".into() },
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
            let api = StaticReceptiveAgents::default();
            api.set(vec![ReceptiveAgent {
                agent_id: RECEPTIVE,
                url: "grpc://agentk-r:8080".into(),
                ca_cert: None,
                tls_host: None,
                auth: ReceptiveAuth::Jwt { private_key: KEY },
            }]);
            let receptive = ReceptiveAgents::new(
                kas.registry().clone(),
                Arc::new(api),
                Arc::new(SimConnector),
                Arc::new(SimClock::default()),
                ReceptiveOptions {
                    poll_period: Duration::from_secs(30),
                    health_period: Duration::from_secs(5),
                    retry_period: Duration::from_secs(2),
                },
            );
            let agents = SimListener::bind(8150, "kas").await?;
            let private = SimListener::bind(8155, "kas").await?;
            let s = CancellationToken::new();
            let (k1, k2, s1, s2, s3) = (kas.clone(), kas.clone(), s.clone(), s.clone(), s.clone());
            tokio::spawn(async move { k1.serve_agents(Box::new(agents), s1).await });
            tokio::spawn(async move { k2.serve_private_api(Box::new(private), s2).await });
            tokio::spawn(async move { receptive.run(s3).await });
            kas.run_tracker(s).await;
            Ok(())
        }
    });
}

fn normal_agentk_host(sim: &mut turmoil::Sim<'static>, seed: u64) {
    sim.host("agentk-n", move || async move {
        let agent = Agentk::new(
            AgentkOptions {
                kas_authority: "kas:8150".into(),
                token: TOKEN.into(),
                services: AgentServices::default().add_service(TestingService::server()),
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

fn receptive_agentk_host(sim: &mut turmoil::Sim<'static>) {
    sim.host("agentk-r", || async {
        let listener = SimListener::bind(8080, "agentk-r").await?;
        let opts = receptive::ReceptiveOptions {
            services: AgentServices::default().add_service(TestingService::server()),
            public_key: Some(receptive::parse_public_key(&public_key_for(&KEY))?),
            agent_id: Some(RECEPTIVE),
            meta: AgentMeta { version: "v18.6.0".into(), commit_id: "sim".into(), ..Default::default() },
            clock: Arc::new(SimClock::default()),
        };
        receptive::serve(Box::new(listener), opts, CancellationToken::new()).await?;
        Ok(())
    });
}

type Log = Arc<Mutex<Vec<(u128, i64, bool)>>>;

/// Calls both agents through kas's private API every second; records (virtual ms, agent, ok?).
fn driver(sim: &mut turmoil::Sim<'static>, log: Log, done: Arc<Mutex<bool>>) {
    sim.client("driver", async move {
        let router = Router::with_timeout(
            kasim_core::tunnel::registry::Registry::default(),
            Arc::new(StaticTracker::new(vec!["grpc://kas:8155".into()])),
            None,
            Arc::new(SimConnector),
            Duration::from_secs(5),
        );
        while !*done.lock().unwrap() {
            for agent in [NORMAL, RECEPTIVE] {
                let mut c = TestingClient::new(router.channel(agent));
                let s1 = format!("to {agent}");
                let r = c.request_response(Request { s1: s1.clone(), payload: vec![] }).await;
                let ok = r.is_ok_and(|r| r.into_inner().s1 == s1);
                log.lock().unwrap().push((turmoil::sim_elapsed().unwrap_or_default().as_millis(), agent, ok));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Ok(())
    });
}

fn oks(log: &Log, agent: i64, after: u128) -> usize {
    log.lock().unwrap().iter().filter(|(t, a, ok)| *a == agent && *ok && *t > after).count()
}

#[test]
fn receptive_and_normal_agents_side_by_side_and_a_receptive_bounce() {
    let seed = std::env::var("KASIM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(11);
    println!("seed {seed}; replay: KASIM_SEED={seed} cargo test -p kasim-sim --test receptive");
    let mut sim = sim(seed);
    let log: Log = Arc::default();
    let done = Arc::new(Mutex::new(false));
    kas_host(&mut sim);
    normal_agentk_host(&mut sim, seed);
    receptive_agentk_host(&mut sim);
    driver(&mut sim, log.clone(), done.clone());

    while oks(&log, NORMAL, 0) < 3 || oks(&log, RECEPTIVE, 0) < 3 {
        assert!(sim.elapsed() < Duration::from_secs(120), "not both served: {:?}", log.lock().unwrap());
        sim.step().unwrap();
    }
    let bounced_at = sim.elapsed().as_millis();
    sim.bounce("agentk-r");
    while oks(&log, RECEPTIVE, bounced_at) < 3 {
        assert!(
            sim.elapsed() < Duration::from_secs(300),
            "receptive agent never served again: {:?}",
            log.lock().unwrap()
        );
        sim.step().unwrap();
    }
    *done.lock().unwrap() = true;
    sim.run().unwrap();
    let first_again =
        log.lock().unwrap().iter().find(|(t, a, ok)| *t > bounced_at && *a == RECEPTIVE && *ok).unwrap().0;
    println!("receptive agent bounced at {bounced_at} ms, served again at {first_again} ms");
    assert!(oks(&log, NORMAL, bounced_at) >= 3, "the normal agent kept being served");
}
