//! Graph data: users with their mail folders, contacts and events, message
//! attachments, and a change sequence per object so that delta queries can
//! tell what changed (and, from the sequence at creation, how).

use std::collections::HashMap;
use std::path::Path;

use chrono::{Duration as ChronoDuration, TimeZone as _, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::MockError;
use crate::ids;

const BUILTIN: &str = include_str!("../../../fixtures/mocks/graph.yaml");

/// Seed data (`fixtures/mocks/graph.yaml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct GraphSeed {
    tenant: String,
    #[serde(default)]
    users: Vec<SeedUser>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct SeedUser {
    id: String,
    user_principal_name: String,
    display_name: String,
    job_title: Option<String>,
    #[serde(default)]
    messages: usize,
    #[serde(default)]
    contacts: Vec<SeedContact>,
    #[serde(default)]
    events: Vec<SeedEvent>,
    #[serde(default)]
    attachments: Vec<SeedAttachment>,
}

/// A file attached to the `message`-th generated message (from 1).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct SeedAttachment {
    message: usize,
    name: String,
    content_type: String,
    text: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct SeedContact {
    given_name: String,
    surname: String,
    email: String,
    company: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct SeedEvent {
    subject: String,
    start: String,
    end: String,
    location: Option<String>,
}

impl GraphSeed {
    /// The built-in seed.
    #[must_use]
    pub fn builtin() -> Self {
        Self::parse(BUILTIN, Path::new("fixtures/mocks/graph.yaml"))
            .expect("built-in graph seed parses")
    }

    /// Loads a seed file.
    ///
    /// # Errors
    /// [`MockError::ReadFixture`] or [`MockError::ParseFixture`].
    pub fn from_file(path: &Path) -> Result<Self, MockError> {
        let text = std::fs::read_to_string(path).map_err(|source| MockError::ReadFixture {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    fn parse(text: &str, path: &Path) -> Result<Self, MockError> {
        let seed: Self = serde_yaml::from_str(text).map_err(|e| MockError::ParseFixture {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        for (i, u) in seed.users.iter().enumerate() {
            if let Some((j, a)) = u
                .attachments
                .iter()
                .enumerate()
                .find(|(_, a)| a.message == 0 || a.message > u.messages)
            {
                return Err(MockError::ParseFixture {
                    path: path.to_owned(),
                    message: format!(
                        "users[{i}].attachments[{j}].message: {} names no message of {} (it has messages 1 to {})",
                        a.message, u.user_principal_name, u.messages
                    ),
                });
            }
        }
        Ok(seed)
    }

    /// The tenant id the seed declares.
    #[must_use]
    pub fn tenant(&self) -> &str {
        &self.tenant
    }
}

/// One kind of item in a mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Message,
    Contact,
    Event,
}

/// A stored item: the Graph object, where it lives and when it last changed.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub(crate) kind: Kind,
    pub(crate) folder: String,
    /// Sequence of the last change.
    pub(crate) seq: u64,
    /// Sequence at creation (a delta's `changeType=created` compares it).
    pub(crate) created: u64,
    pub(crate) deleted: bool,
    pub(crate) object: Value,
}

#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(crate) object: Value,
    pub(crate) items: Vec<Item>,
}

#[derive(Debug, Default)]
pub(crate) struct Store {
    pub(crate) users: Vec<User>,
    pub(crate) seq: u64,
    /// Attachments by message id, in the order they were added.
    pub(crate) attachments: HashMap<String, Vec<Value>>,
}

pub(crate) fn graph_id() -> String {
    // Exchange ids are long base64url strings starting with AAMk.
    ids::alnum_id("AAMkAGI2", 144)
}

fn etag() -> String {
    format!("W/\"{}\"", ids::alnum_id("CQAAABYAAAA", 28))
}

fn email(name: &str, address: &str) -> Value {
    json!({ "emailAddress": { "name": name, "address": address } })
}

pub(crate) fn iso(t: chrono::DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl Store {
    pub(crate) fn seeded(seed: &GraphSeed) -> Self {
        let mut store = Self::default();
        let base = Utc
            .with_ymd_and_hms(2026, 1, 5, 8, 0, 0)
            .single()
            .unwrap_or_else(Utc::now);
        let senders = [
            ("John Smith", "john@example.com"),
            ("Maria Garcia", "maria@globex.test"),
            ("Wei Chen", "wei.chen@initech.test"),
        ];
        for u in &seed.users {
            let mut user = User {
                object: json!({
                    "id": u.id, "businessPhones": [], "displayName": u.display_name,
                    "givenName": u.display_name.split(' ').next(), "surname": u.display_name.split(' ').nth(1),
                    "jobTitle": u.job_title, "mail": u.user_principal_name, "mobilePhone": null,
                    "officeLocation": null, "preferredLanguage": "en-US", "userPrincipalName": u.user_principal_name
                }),
                items: Vec::new(),
            };
            for i in 0..u.messages {
                let (name, address) = senders[i % senders.len()];
                let at = base + ChronoDuration::minutes(i as i64 * 37);
                let object = message(
                    &format!("Message {} from {name}", i + 1),
                    &format!(
                        "Hello {}, this is message number {}.",
                        u.display_name,
                        i + 1
                    ),
                    email(name, address),
                    vec![email(&u.display_name, &u.user_principal_name)],
                    at,
                    "inbox",
                );
                store.seq += 1;
                user.items.push(Item {
                    kind: Kind::Message,
                    folder: "inbox".into(),
                    seq: store.seq,
                    created: store.seq,
                    deleted: false,
                    object,
                });
            }
            for c in &u.contacts {
                let object = contact(&json!({
                    "givenName": c.given_name, "surname": c.surname, "companyName": c.company,
                    "emailAddresses": [{ "name": format!("{} {}", c.given_name, c.surname), "address": c.email }]
                }));
                store.seq += 1;
                user.items.push(Item {
                    kind: Kind::Contact,
                    folder: "contacts".into(),
                    seq: store.seq,
                    created: store.seq,
                    deleted: false,
                    object,
                });
            }
            for e in &u.events {
                let object = event(
                    &json!({
                        "subject": e.subject,
                        "start": { "dateTime": e.start, "timeZone": "UTC" }, "end": { "dateTime": e.end, "timeZone": "UTC" },
                        "location": { "displayName": e.location }
                    }),
                    &user.object,
                );
                store.seq += 1;
                user.items.push(Item {
                    kind: Kind::Event,
                    folder: "calendar".into(),
                    seq: store.seq,
                    created: store.seq,
                    deleted: false,
                    object,
                });
            }
            for a in &u.attachments {
                let message = user
                    .items
                    .iter_mut()
                    .filter(|i| i.kind == Kind::Message)
                    .nth(a.message.saturating_sub(1));
                if let Some(m) = message {
                    m.object["hasAttachments"] = Value::Bool(true);
                    let id = m.object["id"].as_str().unwrap_or_default().to_owned();
                    let attachment = super::attachments::file_attachment(
                        &a.name,
                        &a.content_type,
                        a.text.as_bytes(),
                        m.object["receivedDateTime"].as_str().unwrap_or_default(),
                    );
                    store.attachments.entry(id).or_default().push(attachment);
                }
            }
            store.users.push(user);
        }
        store
    }

    /// A user by id or user principal name (case-insensitive).
    pub(crate) fn user_mut(&mut self, key: &str) -> Option<&mut User> {
        self.users.iter_mut().find(|u| {
            u.object["id"]
                .as_str()
                .is_some_and(|id| id.eq_ignore_ascii_case(key))
                || u.object["userPrincipalName"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(key))
        })
    }

    pub(crate) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
}

/// A message object.
pub(crate) fn message(
    subject: &str,
    body: &str,
    from: Value,
    to: Vec<Value>,
    at: chrono::DateTime<Utc>,
    folder: &str,
) -> Value {
    let id = graph_id();
    let preview: String = body.chars().take(255).collect();
    json!({
        "@odata.etag": etag(), "id": id, "createdDateTime": iso(at), "lastModifiedDateTime": iso(at),
        "changeKey": ids::alnum_id("CQAAABYAAAA", 28), "categories": [], "receivedDateTime": iso(at), "sentDateTime": iso(at),
        "hasAttachments": false, "internetMessageId": format!("<{}@mock.tekup>", ids::hex_id("", 16)),
        "subject": subject, "bodyPreview": preview, "importance": "normal", "parentFolderId": folder,
        "conversationId": ids::alnum_id("AAQkAGI2", 40), "isDeliveryReceiptRequested": false, "isReadReceiptRequested": false,
        "isRead": folder != "inbox", "isDraft": folder == "drafts", "inferenceClassification": "focused",
        "webLink": format!("https://outlook.office365.com/owa/?ItemID={id}"),
        "body": { "contentType": "text", "content": body },
        "sender": from, "from": from, "toRecipients": to, "ccRecipients": [], "bccRecipients": [], "replyTo": [],
        "flag": { "flagStatus": "notFlagged" }
    })
}

/// A contact object from client-supplied fields.
pub(crate) fn contact(fields: &Value) -> Value {
    let now = iso(Utc::now());
    let given = fields["givenName"].as_str().unwrap_or_default();
    let surname = fields["surname"].as_str().unwrap_or_default();
    let display = fields["displayName"].as_str().map_or_else(
        || format!("{given} {surname}").trim().to_owned(),
        str::to_owned,
    );
    let mut c = json!({
        "@odata.etag": etag(), "id": graph_id(), "createdDateTime": now, "lastModifiedDateTime": now,
        "changeKey": ids::alnum_id("EQAAABYAAAA", 28), "categories": [], "parentFolderId": "contacts",
        "birthday": null, "fileAs": "", "displayName": display, "givenName": given, "initials": null,
        "middleName": null, "nickName": null, "surname": surname, "title": null, "jobTitle": null,
        "companyName": null, "department": null, "officeLocation": null, "businessHomePage": null,
        "personalNotes": "", "mobilePhone": null, "imAddresses": [], "businessPhones": [], "homePhones": [],
        "emailAddresses": [], "homeAddress": {}, "businessAddress": {}, "otherAddress": {}
    });
    merge(&mut c, fields);
    c
}

/// An event object from client-supplied fields.
pub(crate) fn event(fields: &Value, organizer: &Value) -> Value {
    let now = iso(Utc::now());
    let id = graph_id();
    let mut e = json!({
        "@odata.etag": etag(), "id": id, "createdDateTime": now, "lastModifiedDateTime": now,
        "changeKey": ids::alnum_id("DwAAABYAAAA", 28), "categories": [], "originalStartTimeZone": "UTC",
        "originalEndTimeZone": "UTC", "iCalUId": ids::hex_id("040000008200E00074C5B7101A82E008", 32),
        "reminderMinutesBeforeStart": 15, "isReminderOn": true, "hasAttachments": false, "subject": "",
        "bodyPreview": "", "importance": "normal", "sensitivity": "normal", "isAllDay": false, "isCancelled": false,
        "isOrganizer": true, "responseRequested": true, "showAs": "busy", "type": "singleInstance",
        "webLink": format!("https://outlook.office365.com/owa/?itemid={id}"), "onlineMeetingUrl": null,
        "isOnlineMeeting": false, "onlineMeetingProvider": "unknown", "allowNewTimeProposals": true,
        "responseStatus": { "response": "organizer", "time": "0001-01-01T00:00:00Z" },
        "body": { "contentType": "html", "content": "" },
        "start": { "dateTime": "", "timeZone": "UTC" }, "end": { "dateTime": "", "timeZone": "UTC" },
        "location": { "displayName": "", "locationType": "default", "uniqueIdType": "unknown" },
        "locations": [], "attendees": [],
        "organizer": email(organizer["displayName"].as_str().unwrap_or_default(), organizer["mail"].as_str().unwrap_or_default())
    });
    merge(&mut e, fields);
    if let Some(preview) = e["body"]["content"]
        .as_str()
        .map(|c| c.chars().take(255).collect::<String>())
    {
        e["bodyPreview"] = Value::from(preview);
    }
    e
}

/// Shallow merge of a PATCH/POST body into an object (`id` is never replaced).
pub(crate) fn merge(target: &mut Value, fields: &Value) {
    if let (Value::Object(t), Value::Object(f)) = (target, fields) {
        for (k, v) in f {
            if k != "id" && !k.starts_with("@odata") {
                t.insert(k.clone(), v.clone());
            }
        }
    }
}
