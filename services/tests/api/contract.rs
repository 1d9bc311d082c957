//! The reference services implement the platform's contract
//! (`fixtures/platform.yaml`): their routing table, queues, token lifetime
//! and apps are the contract's. The harness never reads the services'
//! tables; this is where the two are held together.

use serde_yaml::Value;
use tekup_services::auth::token::TOKEN_TTL_SECS;
use tekup_services::events::{routes_for, ALL_APPS, EVENT_TYPES};
use tekup_services::queue::{QueueName, QueuePriority};

use crate::helpers::fixture;

fn contract() -> Value {
    let text = std::fs::read_to_string(fixture("fixtures/platform.yaml")).expect("contract");
    serde_yaml::from_str(&text).expect("the contract is YAML")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .expect("a list")
        .iter()
        .map(|s| s.as_str().expect("a string").to_owned())
        .collect()
}

#[test]
fn the_routing_table_is_the_contracts() {
    let c = contract();
    let types = c["events"]["types"].as_mapping().expect("event types");
    let mut named: Vec<String> = types
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    named.sort();
    let mut ours: Vec<String> = EVENT_TYPES.iter().map(|s| (*s).to_owned()).collect();
    ours.sort();
    assert_eq!(ours, named, "event types");
    for kind in EVENT_TYPES {
        assert_eq!(
            routes_for(kind),
            strings(&c["events"]["types"][kind]["routes"]),
            "routes of {kind}"
        );
    }
    assert_eq!(ALL_APPS, strings(&c["apps"]), "apps");
}

#[test]
fn the_queues_are_the_contracts() {
    let c = contract();
    let list = c["queues"]["list"].as_mapping().expect("queues");
    let names: Vec<&str> = list.keys().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(QueueName::ALL.map(QueueName::as_str).as_slice(), names);
    for q in QueueName::ALL {
        let spec = &c["queues"]["list"][q.as_str()];
        let priority = match q.priority() {
            QueuePriority::High => "high",
            QueuePriority::Medium => "medium",
            QueuePriority::Low => "low",
        };
        assert_eq!(spec["priority"].as_str(), Some(priority), "{}", q.as_str());
        assert_eq!(
            spec["max-retries"].as_u64(),
            Some(u64::from(q.max_retries())),
            "{}",
            q.as_str()
        );
    }
}

#[test]
fn tokens_live_no_longer_than_the_contract_allows() {
    let c = contract();
    assert_eq!(
        c["tokens"]["max-lifetime"].as_str(),
        Some(format!("{TOKEN_TTL_SECS}s").as_str())
    );
}
