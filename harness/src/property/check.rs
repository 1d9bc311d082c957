//! Holding one answer to what the model expects of it. Messages say what
//! was expected and what came, and name leaked ids by the case's names
//! (`lead-2 of t1`), which is what a reader needs to see the leak.

use std::collections::BTreeSet;

use serde_json::Value;

use super::exec::Vars;
use super::plan::{tenant_var, Expect};

/// Checks `status` and `body` against `expect`, binding what it creates.
pub(crate) fn check_answer(
    expect: &Expect,
    status: u16,
    body: &Value,
    vars: &mut Vars,
) -> Result<(), String> {
    let got = || format!("got {status} {}", short(body));
    let want_status = |want: u16| {
        if status == want {
            Ok(())
        } else {
            Err(format!("expected {want}, {}", got()))
        }
    };
    match expect {
        Expect::Created { tenant, var } => {
            want_status(201)?;
            own(body, *tenant, vars, "the created record")?;
            let id = body["id"]
                .as_str()
                .ok_or_else(|| format!("expected an `id` in the answer, {}", got()))?;
            vars.0.insert(var.clone(), id.to_owned());
            Ok(())
        }
        Expect::Lead {
            tenant,
            lead,
            status: want,
        } => {
            want_status(200)?;
            own(body, *tenant, vars, "the lead")?;
            same(&body["id"], vars.get(&format!("lead-{lead}"))?, "id")?;
            same(&body["status"], want, "status")
        }
        Expect::Leads { tenant, leads } => {
            want_status(200)?;
            let data = list(body)?;
            for item in data {
                own(item, *tenant, vars, "a listed lead")?;
            }
            let want: BTreeSet<String> = leads
                .iter()
                .map(|(n, _)| vars.get(&format!("lead-{n}")).map(str::to_owned))
                .collect::<Result<_, _>>()?;
            let got_ids: BTreeSet<String> = ids(data);
            if want != got_ids || body["total"].as_u64() != Some(leads.len() as u64) {
                return Err(format!(
                    "expected exactly the tenant's leads [{}], got [{}] (total {})",
                    names(&want, vars),
                    names(&got_ids, vars),
                    body["total"]
                ));
            }
            for (n, want) in leads {
                let id = vars.get(&format!("lead-{n}"))?;
                let item = data.iter().find(|d| d["id"] == id);
                if let Some(item) = item {
                    same(&item["status"], want, &format!("lead-{n}'s status"))?;
                }
            }
            Ok(())
        }
        Expect::Synced { tenant, contacts } => {
            want_status(200)?;
            let data = list(body)?;
            if data.len() != contacts.len() {
                return Err(format!(
                    "expected {} contacts back, {}",
                    contacts.len(),
                    got()
                ));
            }
            for (item, (slot, email, new)) in data.iter().zip(contacts) {
                own(item, *tenant, vars, "a synced contact")?;
                same(&item["email"], email, "email")?;
                let id = item["id"].as_str().unwrap_or_default().to_owned();
                let var = format!("contact-{slot}");
                if *new {
                    vars.0.insert(var, id);
                } else {
                    same(&item["id"], vars.get(&var)?, &var)?;
                }
            }
            Ok(())
        }
        Expect::Contacts { tenant, must, may } => {
            want_status(200)?;
            let data = list(body)?;
            for item in data {
                own(item, *tenant, vars, "a listed contact")?;
                let email = item["email"].as_str().unwrap_or_default();
                if !may.contains(email) {
                    return Err(format!(
                        "the tenant never used the email of contact {} ({email}); it may only see contacts it synced or its leads made ({})",
                        item["id"],
                        may.iter().cloned().collect::<Vec<_>>().join(", ")
                    ));
                }
            }
            let listed = ids(data);
            for slot in must {
                let id = vars.get(&format!("contact-{slot}"))?;
                if !listed.contains(id) {
                    return Err(format!(
                        "expected contact-{slot} among the tenant's contacts, got [{}]",
                        names(&listed, vars)
                    ));
                }
            }
            Ok(())
        }
        Expect::Deals { tenant, deals } => {
            want_status(200)?;
            let data = list(body)?;
            for item in data {
                own(item, *tenant, vars, "a listed deal")?;
            }
            let want: BTreeSet<String> = deals
                .iter()
                .map(|n| vars.get(&format!("deal-{n}")).map(str::to_owned))
                .collect::<Result<_, _>>()?;
            let listed = ids(data);
            if want == listed {
                Ok(())
            } else {
                Err(format!(
                    "expected exactly the deals [{}], got [{}]",
                    names(&want, vars),
                    names(&listed, vars)
                ))
            }
        }
        Expect::Refused(codes) => {
            if codes.contains(&status) && body["error"].is_object() {
                return Ok(());
            }
            let leak = if (200..300).contains(&status) {
                "LEAK: the request was served; "
            } else {
                ""
            };
            Err(format!(
                "{leak}expected a refusal ({}) with an error body, {}",
                codes
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(" or "),
                got()
            ))
        }
        Expect::Status(want) => want_status(*want),
    }
}

/// The record carries the tenant's id; otherwise a leak, named.
fn own(item: &Value, tenant: usize, vars: &Vars, what: &str) -> Result<(), String> {
    let want = vars.get(&tenant_var(tenant))?;
    if item["tenantId"] == want {
        return Ok(());
    }
    let whose = item["tenantId"]
        .as_str()
        .and_then(|t| vars.name_of(t))
        .map_or_else(|| item["tenantId"].to_string(), str::to_owned);
    let which = item["id"]
        .as_str()
        .and_then(|id| vars.name_of(id))
        .map_or_else(|| item["id"].to_string(), str::to_owned);
    Err(format!(
        "LEAK: {what} ({which}) belongs to {whose}, not to t{tenant}: {}",
        short(item)
    ))
}

fn same(got: &Value, want: &str, what: &str) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("expected {what} `{want}`, got {got}"))
    }
}

fn list(body: &Value) -> Result<&Vec<Value>, String> {
    body["data"]
        .as_array()
        .ok_or_else(|| format!("expected a `data` list, got {}", short(body)))
}

fn ids(data: &[Value]) -> BTreeSet<String> {
    data.iter()
        .filter_map(|d| d["id"].as_str().map(str::to_owned))
        .collect()
}

fn names(ids: &BTreeSet<String>, vars: &Vars) -> String {
    ids.iter()
        .map(|id| vars.name_of(id).unwrap_or(id).to_owned())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A value on one line, cut at 300 characters.
pub(crate) fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.len() <= 300 {
        return text;
    }
    let mut end = 300;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
