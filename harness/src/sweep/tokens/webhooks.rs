//! Inbound webhooks against the contract's `webhooks:` rules.
//!
//! The operation of each webhook is the one whose security is
//! `webhookSignature` naming it (`x-tekup-webhook`), else the contract's
//! `service` and `path`. Only the `stripe-v1` scheme is known: header
//! `t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">` with the secret of the
//! ecosystem var `<name>-webhook-secret`.
//!
//! A correctly signed, fresh event is delivered first (it must be
//! accepted, or the refusals prove nothing); then no signature, another
//! secret's, a timestamp `tolerance + 60 s` old and as far ahead: each must
//! be refused (4xx). `replay: refused` — an event id already accepted,
//! delivered again and freshly signed, is refused (4xx) or acknowledged
//! (2xx) without a second effect — is checked with an event that has one:
//! the payment of a won deal (`POST /deals`, `POST /deals/{id}/won` on the
//! webhook's service as an app the matrix lets write deals; its payment
//! intent as Stripe, the ecosystem's `<name>` component, has it). Its
//! effect is what the first delivery added to the contract's event stream
//! for the tenant; the replay may add none of those types.

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::{send, ClassReport, Repro, Sent, Target};
use crate::contract::Webhook;
use crate::sweep::Security;

/// How long the first delivery's effect may take to show on the stream.
const EFFECT_WITHIN: Duration = Duration::from_secs(10);
/// How long the stream is watched for a replay's second effect.
const REPLAY_WATCH: Duration = Duration::from_secs(1);

/// One webhook: its contract and where it is served.
struct Hook<'a> {
    name: &'a str,
    rules: &'a Webhook,
    service: String,
    path: String,
}

pub(super) async fn sweep(target: &Target, report: &mut ClassReport) -> Result<(), String> {
    if target.contract.webhooks.is_empty() {
        return Err("the contract has no webhooks".to_owned());
    }
    let mut not_run = Vec::new();
    for (name, rules) in &target.contract.webhooks {
        let (service, path) = target
            .operations
            .list
            .iter()
            .find(|op| matches!(&op.security, Security::Webhook { name: n } if n == name))
            .map_or_else(
                || (rules.service.clone(), rules.path.clone()),
                |op| (op.service.clone(), op.path.clone()),
            );
        let hook = Hook {
            name,
            rules,
            service,
            path,
        };
        if rules.scheme != "stripe-v1" {
            not_run.push(format!("{name}: unknown scheme `{}`", rules.scheme));
            continue;
        }
        if let Err(why) = stripe(target, report, &hook).await {
            not_run.push(format!("{name}: {why}"));
        }
    }
    if not_run.is_empty() {
        Ok(())
    } else {
        Err(not_run.join("; "))
    }
}

async fn stripe(target: &Target, report: &mut ClassReport, hook: &Hook<'_>) -> Result<(), String> {
    let secret = target
        .secret(&format!("{}-webhook-secret", hook.name))?
        .to_owned();
    let tolerance = i64::try_from(hook.rules.tolerance.as_secs()).unwrap_or(i64::MAX);
    let now = chrono::Utc::now().timestamp();
    let event = || {
        json!({ "id": format!("evt_sweep_{}", uuid::Uuid::new_v4().simple()), "object": "event",
                "type": "customer.updated", "created": now, "data": { "object": {} } })
    };
    let accepted = |sent: &Sent| (200..300).contains(&sent.status);
    let refused = |sent: &Sent| (400..500).contains(&sent.status);
    let control = delivery(target, hook, &event(), Some((&secret, now)))?;
    if !expect(
        target,
        report,
        hook,
        &control,
        "a signed, fresh event",
        "2xx",
        accepted,
    )
    .await?
    {
        return Ok(());
    }
    let cases = [
        ("an event without a signature", None),
        (
            "an event signed with another secret",
            Some(("whsec_not_the_platforms", now)),
        ),
        (
            "an event signed `tolerance + 60 s` ago",
            Some((secret.as_str(), now - tolerance - 60)),
        ),
        (
            "an event signed `tolerance + 60 s` ahead",
            Some((secret.as_str(), now + tolerance + 60)),
        ),
    ];
    for (what, signing) in cases {
        let repro = delivery(target, hook, &event(), signing)?;
        expect(target, report, hook, &repro, what, "4xx", refused).await?;
    }
    replay(target, report, hook, &secret).await
}

/// A POST of `event` to the hook, signed with `(secret, t)` when given.
fn delivery(
    target: &Target,
    hook: &Hook<'_>,
    event: &Value,
    signing: Option<(&str, i64)>,
) -> Result<Repro, String> {
    let base_url = target
        .platform
        .url(&hook.service)
        .map_err(|e| e.to_string())?;
    let body = event.to_string();
    let mut repro = Repro::new(&hook.service, base_url, "POST", &hook.path)
        .header("content-type", "application/json");
    if let Some((secret, t)) = signing {
        repro = repro.header(&hook.rules.signature_header, &signature(secret, t, &body));
    }
    Ok(repro.raw(body))
}

/// `t=<t>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
fn signature(secret: &str, t: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Sends `repro`; records a finding unless `ok` holds for the answer.
async fn expect(
    target: &Target,
    report: &mut ClassReport,
    hook: &Hook<'_>,
    repro: &Repro,
    what: &str,
    expected: &str,
    ok: impl Fn(&Sent) -> bool,
) -> Result<bool, String> {
    let sent = send(target, repro).await?;
    let operation = format!("{} POST {}", hook.service, hook.path);
    report.cases += 1;
    report.operations.insert(operation.clone());
    if ok(&sent) {
        return Ok(true);
    }
    report.found(
        operation,
        format!("{what} answered {} (expected {expected})", sent.status),
        format!(
            "rule: webhooks.{} (scheme {}, tolerance {}s)\ngot {}, expected {expected}\nanswer: {}",
            hook.name,
            hook.rules.scheme,
            hook.rules.tolerance.as_secs(),
            sent.status,
            sent.shown()
        ),
        Some(repro.clone()),
    );
    Ok(false)
}

/// The replay of a payment event (see the module's docs).
async fn replay(
    target: &Target,
    report: &mut ClassReport,
    hook: &Hook<'_>,
    secret: &str,
) -> Result<(), String> {
    let redis = target
        .redis
        .as_deref()
        .ok_or("replay: no Redis to see the event stream (the target has none)")?;
    let (tenant, intent) = payment(target, hook).await?;
    let event = json!({ "id": format!("evt_sweep_{}", uuid::Uuid::new_v4().simple()), "object": "event",
        "type": "payment_intent.succeeded", "created": chrono::Utc::now().timestamp(),
        "data": { "object": intent } });
    let stream = Stream::open(redis, &target.contract.events.stream, &tenant).await?;
    let before = stream.last().await?;
    let first = delivery(
        target,
        hook,
        &event,
        Some((secret, chrono::Utc::now().timestamp())),
    )?;
    let ok = expect(
        target,
        report,
        hook,
        &first,
        "a signed payment event",
        "2xx",
        |s| (200..300).contains(&s.status),
    )
    .await?;
    if !ok {
        return Ok(());
    }
    let deadline = Instant::now() + EFFECT_WITHIN;
    let effect = loop {
        let effect = stream.since(&before).await?;
        if !effect.is_empty() || Instant::now() > deadline {
            break effect;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if effect.is_empty() {
        return Err(format!(
            "replay: the payment event put nothing on `{}` for its tenant within {EFFECT_WITHIN:?}: no effect to see twice",
            target.contract.events.stream
        ));
    }
    let after = effect.last().map(|(id, _)| id.clone()).unwrap_or(before);
    let types: Vec<String> = effect.into_iter().map(|(_, t)| t).collect();
    // Same event id, freshly signed (another timestamp, another signature).
    let again = delivery(
        target,
        hook,
        &event,
        Some((secret, chrono::Utc::now().timestamp() - 1)),
    )?;
    let sent = send(target, &again).await?;
    let operation = format!("{} POST {}", hook.service, hook.path);
    report.cases += 1;
    let mut second = Vec::new();
    if (200..300).contains(&sent.status) {
        let deadline = Instant::now() + REPLAY_WATCH;
        while second.is_empty() && Instant::now() < deadline {
            second = stream
                .since(&after)
                .await?
                .into_iter()
                .filter(|(_, t)| types.contains(t))
                .collect();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let detail = |why: String| {
        format!(
            "rule: webhooks.{} replay: {} (an event id already accepted is refused, 4xx, or acknowledged, 2xx, without a second effect)\nevent id: {}\n{why}\nanswer: {}",
            hook.name, hook.rules.replay, event["id"].as_str().unwrap_or_default(), sent.shown()
        )
    };
    if sent.status >= 500 || sent.status < 200 || (300..400).contains(&sent.status) {
        report.found(
            operation,
            format!(
                "a replayed event answered {} (expected 4xx, or 2xx without effect)",
                sent.status
            ),
            detail(format!("got {}", sent.status)),
            Some(again),
        );
    } else if !second.is_empty() {
        let kinds: Vec<&str> = second.iter().map(|(_, t)| t.as_str()).collect();
        report.found(
            operation,
            format!(
                "a replayed event was handled again: answered {} and published {}",
                sent.status,
                kinds.join(", ")
            ),
            detail(format!(
                "the first delivery published {}; the replay published {} more",
                types.join(", "),
                second.len()
            )),
            Some(again),
        );
    }
    Ok(())
}

/// A fresh tenant's won deal and its payment intent as Stripe has it.
async fn payment(target: &Target, hook: &Hook<'_>) -> Result<(String, Value), String> {
    let contract = target.contract;
    let app = contract
        .apps
        .iter()
        .find(|a| {
            contract
                .permissions_of(a, &hook.service)
                .contains("write:deals")
        })
        .ok_or_else(|| format!("replay: no app may write deals on {}", hook.service))?;
    let tenant = target
        .platform
        .create_tenant("sweep-webhook")
        .await
        .map_err(|e| format!("replay: failed to create a tenant: {e}"))?;
    let client = target.platform.client(&tenant, app);
    let setup = |what: &str, e: String| format!("replay: failed to {what}: {e}");
    let deal = client
        .post(
            &hook.service,
            "/deals",
            &json!({ "title": "Sweep replay", "amount": 1000, "currency": "eur" }),
        )
        .await
        .map_err(|e| setup("create a deal", e.to_string()))?;
    let id = deal.body["id"]
        .as_str()
        .ok_or_else(|| setup("create a deal", format!("{} {}", deal.status, deal.body)))?;
    let won = client
        .post(&hook.service, &format!("/deals/{id}/won"), &json!({}))
        .await
        .map_err(|e| setup("win the deal", e.to_string()))?;
    let intent = won.body["stripePaymentIntentId"]
        .as_str()
        .ok_or_else(|| setup("win the deal", format!("{} {}", won.status, won.body)))?;
    let stripe = target
        .platform
        .url(hook.name)
        .map_err(|e| setup("find Stripe", e.to_string()))?;
    let object = target
        .platform
        .http()
        .get(format!("{stripe}/v1/payment_intents/{intent}"))
        .bearer_auth("sk_test_tekup_sweep")
        .send()
        .await
        .map_err(|e| setup("read the payment intent", e.to_string()))?
        .json::<Value>()
        .await
        .map_err(|e| setup("read the payment intent", e.to_string()))?;
    if object["id"] != intent {
        return Err(setup("read the payment intent", object.to_string()));
    }
    Ok((tenant.id, object))
}

/// The contract's event stream, as one tenant's entries.
struct Stream {
    redis: redis::aio::MultiplexedConnection,
    key: String,
    tenant: String,
}

impl Stream {
    async fn open(url: &str, key: &str, tenant: &str) -> Result<Stream, String> {
        let redis = redis::Client::open(url)
            .map_err(|e| format!("Redis {url}: {e}"))?
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| format!("Redis {url}: {e}"))?;
        Ok(Stream {
            redis,
            key: key.to_owned(),
            tenant: tenant.to_owned(),
        })
    }

    /// The id of the stream's last entry (`0-0` when empty).
    async fn last(&self) -> Result<String, String> {
        let reply: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(&self.key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.redis.clone())
            .await
            .map_err(|e| format!("XREVRANGE {}: {e}", self.key))?;
        Ok(reply
            .ids
            .first()
            .map_or_else(|| "0-0".to_owned(), |e| e.id.clone()))
    }

    /// The tenant's entries after `cursor`: (id, event type).
    async fn since(&self, cursor: &str) -> Result<Vec<(String, String)>, String> {
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(&self.key)
            .arg(format!("({cursor}"))
            .arg("+")
            .query_async(&mut self.redis.clone())
            .await
            .map_err(|e| format!("XRANGE {}: {e}", self.key))?;
        Ok(reply
            .ids
            .into_iter()
            .filter_map(|entry| {
                let event = entry.map.values().find_map(|v| {
                    let text: String = redis::from_redis_value(v).ok()?;
                    serde_json::from_str::<Value>(&text).ok()
                })?;
                (event["tenantId"] == self.tenant.as_str()).then(|| {
                    (
                        entry.id.clone(),
                        event["type"].as_str().unwrap_or_default().to_owned(),
                    )
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_stripes_scheme() {
        // HMAC-SHA256("whsec", "1.{}"), as Stripe's libraries compute it.
        let header = signature("whsec", 1, "{}");
        assert!(header.starts_with("t=1,v1="), "{header}");
        assert_eq!(header.len(), "t=1,v1=".len() + 64);
        assert_ne!(
            signature("whsec", 2, "{}"),
            header,
            "the timestamp is signed"
        );
    }
}
