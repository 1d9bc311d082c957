//! `POST /voice/execute`: a spoken command, understood by Gemini.
//!
//! The transcript goes to Gemini with the commands the voice agent may run
//! declared as functions. A function call is executed for the caller's
//! tenant, its result returned and broadcast as `VOICE_COMMAND_EXECUTED`;
//! a plain-text answer (the model did not recognise a command) is returned
//! as `reply` with `executed: false` and nothing is broadcast.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::activities;
use super::leads::{Lead, STATUSES};
use crate::auth::TenantContext;
use crate::client::HttpError;
use crate::db::tenant_tx;
use crate::error::{ApiError, ApiResult};
use crate::events::CrossAppEvent;
use crate::external::gemini::{FunctionDeclaration, GeminiError, GeminiReply, Prompt};
use crate::state::{AppState, ServiceName};
use crate::validate;

const INSTRUCTIONS: &str = "You are the voice agent of a CRM. Map the user's spoken request to \
    exactly one of the functions. If no function fits, answer briefly in text.";

/// The commands the voice agent can run.
fn functions() -> [FunctionDeclaration; 2] {
    [
        FunctionDeclaration {
            name: "get_leads".into(),
            description: "List the most recent leads, optionally only those with a status.".into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "status": { "type": "string", "enum": STATUSES },
                    "limit": { "type": "integer", "description": "How many, 1 to 50 (default 10)." }
                }
            }),
        },
        FunctionDeclaration {
            name: "create_activity".into(),
            description: "Record an activity (a note, a call) on a lead.".into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "leadId": { "type": "string", "description": "The lead's id." },
                    "description": { "type": "string" }
                },
                "required": ["description"]
            }),
        },
    ]
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct VoiceRequest {
    /// What the user said.
    #[schema(min_length = 1, max_length = 2000, pattern = r"\S")]
    transcript: String,
}

/// Run a spoken command
///
/// The transcript is mapped to one command (`get_leads`, needing
/// `read:leads`; `create_activity`, needing `write:activities`) by the
/// language model; a transcript that names none is answered with
/// `executed: false` and a `reply`.
#[utoipa::path(
    post,
    path = "/voice/execute",
    operation_id = "executeVoice",
    request_body(content = VoiceRequest, example = json!({ "transcript": "Show me the new leads" })),
    responses(
        (status = 200, description = "`executed`, `command`, and `result` or `reply`", body = Object),
        (status = 502, description = "the language model failed", body = crate::openapi::Error),
        (status = 503, description = "no language model is configured", body = crate::openapi::Error),
    ),
    security(("tenantKey" = ["execute:voice"]), ("crossAppToken" = ["execute:voice"])),
)]
pub(super) async fn execute(
    State(state): State<AppState>,
    ctx: TenantContext,
    Json(body): Json<VoiceRequest>,
) -> ApiResult<Json<Value>> {
    ctx.require("execute:voice")?;
    let transcript = validate::text("transcript", &body.transcript, 2000)?;
    let gemini = state
        .external
        .gemini()
        .map_err(|e| ApiError::not_configured("gemini", e.to_string()))?;
    let prompt = functions().into_iter().fold(
        Prompt::user(&transcript).system(INSTRUCTIONS),
        Prompt::function,
    );
    let reply = gemini.generate(&prompt).await.map_err(|e| {
        tracing::warn!(error = crate::error::chain(&e), "gemini failed");
        match e {
            // Known down: come back when the breaker lets calls through.
            GeminiError::Http(HttpError::CircuitOpen(open)) => ApiError::from(open),
            e => ApiError::Upstream(format!("the language model failed: {e}")),
        }
    })?;
    let (name, args) = match reply {
        GeminiReply::Text(text) => {
            return Ok(Json(
                json!({ "executed": false, "command": null, "reply": text }),
            ));
        }
        GeminiReply::FunctionCall { name, args } => (name, args),
    };
    let result = match name.as_str() {
        "get_leads" => get_leads(&state, &ctx, &args).await?,
        "create_activity" => create_activity(&state, &ctx, &args, &transcript).await?,
        other => {
            let reply = format!("I cannot run {other:?}.");
            return Ok(Json(
                json!({ "executed": false, "command": other, "reply": reply }),
            ));
        }
    };
    let response = json!({ "executed": true, "command": name, "args": args, "result": result });
    if let Some(events) = &state.events {
        let data =
            json!({ "command": name, "args": args, "result": result, "transcript": transcript });
        let event = CrossAppEvent::new(
            "VOICE_COMMAND_EXECUTED",
            ServiceName::FlowApi.as_str(),
            &ctx.tenant_id,
            data,
        );
        events.publish(&event).await?;
    }
    Ok(Json(response))
}

/// Arguments the model gave that do not fit are the caller's problem to
/// rephrase: 422 naming them, never a 500.
fn bad_args(message: String) -> ApiError {
    ApiError::Validation(format!(
        "the recognised command has invalid arguments: {message}"
    ))
}

async fn get_leads(state: &AppState, ctx: &TenantContext, args: &Value) -> ApiResult<Value> {
    ctx.require("read:leads")?;
    let status = args["status"].as_str();
    if let Some(status) = status {
        validate::one_of("status", status, &STATUSES).map_err(|e| bad_args(e.to_string()))?;
    }
    let limit = args["limit"].as_i64().unwrap_or(10).clamp(1, 50);
    let mut tx = tenant_tx(&state.db, &ctx.tenant_id).await?;
    let leads: Vec<Lead> = sqlx::query_as(
        "SELECT * FROM flow.leads WHERE tenant_id = $1 AND ($2::text IS NULL OR status = $2)
          ORDER BY created_at DESC, id LIMIT $3",
    )
    .bind(&ctx.tenant_id)
    .bind(status)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(json!({ "count": leads.len(), "leads": leads }))
}

async fn create_activity(
    state: &AppState,
    ctx: &TenantContext,
    args: &Value,
    transcript: &str,
) -> ApiResult<Value> {
    ctx.require("write:activities")?;
    let description = args["description"]
        .as_str()
        .ok_or_else(|| bad_args("`description` is missing".into()))?;
    let description =
        validate::text("description", description, 2000).map_err(|e| bad_args(e.to_string()))?;
    let lead = match args["leadId"].as_str() {
        Some(id) => Some(
            id.parse::<Uuid>()
                .map_err(|_| bad_args(format!("`leadId` {id:?} is not an id")))?,
        ),
        None => None,
    };
    let mut tx = tenant_tx(&state.db, &ctx.tenant_id).await?;
    if let Some(lead) = lead {
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM flow.leads WHERE id = $1 AND tenant_id = $2)",
        )
        .bind(lead)
        .bind(&ctx.tenant_id)
        .fetch_one(&mut *tx)
        .await?;
        if !exists {
            return Err(ApiError::NotFound(format!("lead {lead} not found")));
        }
    }
    let data = json!({ "via": "voice", "transcript": transcript });
    let activity = activities::record(
        &mut tx,
        &ctx.tenant_id,
        "VOICE_NOTE",
        "lead",
        lead,
        Some(&description),
        &data,
    )
    .await?;
    tx.commit().await?;
    serde_json::to_value(activity).map_err(ApiError::internal)
}
