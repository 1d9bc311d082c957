//! Scripted answers for the language-model mocks (OpenAI, Gemini REST and Live).
//!
//! A script is a YAML file (`fixtures/mocks/openai.yaml`, `gemini.yaml`): an
//! ordered list of rules "when the prompt looks like this, reply with this
//! text or this function call", a default reply and canned transcripts for
//! audio. The first rule that matches wins. Replies are templates:
//! `{{prompt}}`, `{{tool-result}}` (the JSON of the tool result),
//! `{{tool-result.<field>}}` and named captures of `prompt-matches`.
//!
//! ```yaml
//! rules:
//!   - name: weather
//!     when: { prompt-matches: "(?i)weather in (?P<city>\\w+)" }
//!     reply: { function-call: { name: get_weather, arguments: { city: "{{city}}" } } }
//!   - when: { tool-result: get_weather }
//!     reply: { text: "It is {{tool-result.temperature}} degrees." }
//!   - name: lead-json            # structured output: a JSON reply
//!     when: { prompt-contains: "extract the lead" }
//!     reply: { json: { name: "Ada Lovelace", score: 90 } }
//! default: { text: "Mock answer to: {{prompt}}" }
//! transcripts: { default: "hello", by-file: { lead.wav: "create a lead" }, by-tone: { 440: "show my new leads" } }
//! ```
//!
//! A rule with a function call only fires when the request declares that tool
//! (a real model cannot call an undeclared function); rules without
//! `tool-result` never fire on a turn that answers a tool call, so a client's
//! tool loop ends.
//!
//! Transcripts stand in for speech recognition: OpenAI's transcription
//! endpoint looks them up by the uploaded file's name (`by-file`), the Gemini
//! Live API by the pitch of the tone a test speaks (`by-tone`, see the Live
//! module's audio source); both fall back to `default`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use crate::error::MockError;

const OPENAI_BUILTIN: &str = include_str!("../../fixtures/mocks/openai.yaml");
const GEMINI_BUILTIN: &str = include_str!("../../fixtures/mocks/gemini.yaml");

/// What the model is asked, reduced to what rules look at.
#[derive(Debug, Clone, Default)]
pub struct Prompt {
    /// Text of the last user message.
    pub user: String,
    /// System instructions, if any.
    pub system: String,
    /// Names of the functions the request declares.
    pub tools: Vec<String>,
    /// When the last message answers a tool call: function name and result.
    pub tool_result: Option<(String, Value)>,
}

/// What the model answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A text answer.
    Text(String),
    /// A function call with JSON arguments.
    FunctionCall {
        /// Function name.
        name: String,
        /// Arguments object.
        arguments: Value,
    },
}

/// A loaded script.
#[derive(Debug, Clone)]
pub struct Script {
    rules: Vec<Rule>,
    default: ReplyFile,
    transcripts: TranscriptsFile,
}

#[derive(Debug, Clone)]
struct Rule {
    /// `name`, else `rules[i]`: how errors name the rule.
    label: String,
    when: When,
    regex: Option<Regex>,
    reply: ReplyFile,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct ScriptFile {
    #[serde(default)]
    rules: Vec<RuleFile>,
    default: Option<ReplyFile>,
    #[serde(default)]
    transcripts: TranscriptsFile,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    name: Option<String>,
    when: When,
    reply: ReplyFile,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct When {
    prompt_contains: Option<String>,
    prompt_matches: Option<String>,
    system_contains: Option<String>,
    tool_result: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct ReplyFile {
    text: Option<String>,
    function_call: Option<FunctionCallFile>,
    /// A JSON answer (structured output), sent as its text.
    json: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct FunctionCallFile {
    name: String,
    #[serde(default)]
    arguments: Value,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct TranscriptsFile {
    default: Option<String>,
    #[serde(default)]
    by_file: BTreeMap<String, String>,
    /// Live audio: the pitch in Hz of a test tone and what it "says".
    #[serde(default)]
    by_tone: BTreeMap<u32, String>,
}

impl Script {
    /// The built-in OpenAI script (`fixtures/mocks/openai.yaml`).
    #[must_use]
    pub fn builtin_openai() -> Self {
        Self::parse(OPENAI_BUILTIN, Path::new("fixtures/mocks/openai.yaml"))
            .expect("built-in openai script parses")
    }

    /// The built-in Gemini script (`fixtures/mocks/gemini.yaml`).
    #[must_use]
    pub fn builtin_gemini() -> Self {
        Self::parse(GEMINI_BUILTIN, Path::new("fixtures/mocks/gemini.yaml"))
            .expect("built-in gemini script parses")
    }

    /// Loads a script file.
    ///
    /// # Errors
    /// [`MockError::ReadFixture`] or [`MockError::ParseFixture`] naming the file, line and column.
    pub fn from_file(path: &Path) -> Result<Self, MockError> {
        let text = std::fs::read_to_string(path).map_err(|source| MockError::ReadFixture {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses script text; `path` is only used in error messages.
    ///
    /// # Errors
    /// [`MockError::ParseFixture`] with line, column and what is wrong.
    pub fn parse(text: &str, path: &Path) -> Result<Self, MockError> {
        let fail = |message: String| MockError::ParseFixture {
            path: PathBuf::from(path),
            message,
        };
        let file: ScriptFile = serde_yaml::from_str(text).map_err(|e| fail(e.to_string()))?;
        let mut rules = Vec::with_capacity(file.rules.len());
        for (i, rule) in file.rules.into_iter().enumerate() {
            check_reply(&rule.reply).map_err(|m| fail(format!("rules[{i}].reply: {m}")))?;
            let regex = match &rule.when.prompt_matches {
                Some(re) => Some(
                    Regex::new(re)
                        .map_err(|e| fail(format!("rules[{i}].when.prompt-matches: {e}")))?,
                ),
                None => None,
            };
            rules.push(Rule {
                label: rule.name.unwrap_or_else(|| format!("rules[{i}]")),
                when: rule.when,
                regex,
                reply: rule.reply,
            });
        }
        let default = file.default.unwrap_or(ReplyFile {
            text: Some("This is a mock answer to: {{prompt}}".into()),
            function_call: None,
            json: None,
        });
        check_reply(&default).map_err(|m| fail(format!("default: {m}")))?;
        Ok(Self {
            rules,
            default,
            transcripts: file.transcripts,
        })
    }

    /// The reply to `prompt`: the first matching rule's, else the default.
    #[must_use]
    pub fn answer(&self, prompt: &Prompt) -> Reply {
        self.answer_by_rule(prompt).0
    }

    /// The reply to `prompt` and the rule that gave it (its `name`, else
    /// `rules[i]`); `None` when it is the default reply.
    #[must_use]
    pub fn answer_by_rule(&self, prompt: &Prompt) -> (Reply, Option<&str>) {
        for rule in &self.rules {
            if let Some(vars) = rule.matches(prompt) {
                return (render(&rule.reply, prompt, &vars), Some(&rule.label));
            }
        }
        (render(&self.default, prompt, &BTreeMap::new()), None)
    }

    /// The transcript for an uploaded audio file called `file_name`.
    #[must_use]
    pub fn transcript(&self, file_name: &str) -> String {
        self.transcripts
            .by_file
            .get(file_name)
            .or(self.transcripts.default.as_ref())
            .cloned()
            .unwrap_or_else(|| "This is a mock transcription.".into())
    }

    /// The transcript of an utterance heard on a Live session whose pitch is
    /// `tone_hz`: the `by-tone` entry within 5 % of it (the nearest if
    /// several), else the default transcript.
    #[must_use]
    pub fn transcript_of_tone(&self, tone_hz: Option<f64>) -> String {
        let by_tone = tone_hz.and_then(|hz| {
            self.transcripts
                .by_tone
                .iter()
                .map(|(&want, text)| ((hz - f64::from(want)).abs() / f64::from(want), text))
                .filter(|(off, _)| *off <= 0.05)
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, text)| text.clone())
        });
        by_tone.unwrap_or_else(|| self.transcript(""))
    }
}

fn check_reply(reply: &ReplyFile) -> Result<(), String> {
    let set = [
        reply.text.is_some(),
        reply.function_call.is_some(),
        reply.json.is_some(),
    ];
    if set.iter().filter(|s| **s).count() == 1 {
        Ok(())
    } else {
        Err("exactly one of `text`, `function-call` or `json` is required".into())
    }
}

impl Rule {
    /// Template variables when the rule matches.
    fn matches(&self, prompt: &Prompt) -> Option<BTreeMap<String, String>> {
        let mut vars = BTreeMap::new();
        match (&self.when.tool_result, &prompt.tool_result) {
            (Some(want), Some((name, _))) if want == name => {}
            (None, None) => {}
            _ => return None,
        }
        if let Some(call) = &self.reply.function_call {
            if !prompt.tools.iter().any(|t| t == &call.name) {
                return None;
            }
        }
        if let Some(needle) = &self.when.prompt_contains {
            if !prompt.user.to_lowercase().contains(&needle.to_lowercase()) {
                return None;
            }
        }
        if let Some(needle) = &self.when.system_contains {
            if !prompt
                .system
                .to_lowercase()
                .contains(&needle.to_lowercase())
            {
                return None;
            }
        }
        if let Some(re) = &self.regex {
            let caps = re.captures(&prompt.user)?;
            for name in re.capture_names().flatten() {
                if let Some(m) = caps.name(name) {
                    vars.insert(name.to_owned(), m.as_str().to_owned());
                }
            }
        }
        Some(vars)
    }
}

fn render(reply: &ReplyFile, prompt: &Prompt, vars: &BTreeMap<String, String>) -> Reply {
    if let Some(call) = &reply.function_call {
        return Reply::FunctionCall {
            name: call.name.clone(),
            arguments: render_value(&call.arguments, prompt, vars),
        };
    }
    if let Some(json) = &reply.json {
        return Reply::Text(render_json(json, prompt, vars).to_string());
    }
    Reply::Text(fill(
        reply.text.as_deref().unwrap_or_default(),
        prompt,
        vars,
    ))
}

fn render_value(value: &Value, prompt: &Prompt, vars: &BTreeMap<String, String>) -> Value {
    match value {
        Value::String(s) => Value::String(fill(s, prompt, vars)),
        Value::Array(a) => Value::Array(a.iter().map(|v| render_value(v, prompt, vars)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), render_value(v, prompt, vars)))
                .collect(),
        ),
        Value::Null => Value::Object(serde_json::Map::new()),
        other => other.clone(),
    }
}

/// A JSON reply with its strings filled in; `null` stays `null`.
fn render_json(value: &Value, prompt: &Prompt, vars: &BTreeMap<String, String>) -> Value {
    match value {
        Value::String(s) => Value::String(fill(s, prompt, vars)),
        Value::Array(a) => Value::Array(a.iter().map(|v| render_json(v, prompt, vars)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), render_json(v, prompt, vars)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn fill(template: &str, prompt: &Prompt, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let key = rest[start + 2..start + end].trim();
        out.push_str(&lookup(key, prompt, vars));
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}

fn lookup(key: &str, prompt: &Prompt, vars: &BTreeMap<String, String>) -> String {
    if key == "prompt" {
        return prompt.user.clone();
    }
    if let Some(v) = vars.get(key) {
        return v.clone();
    }
    if let Some(field) = key.strip_prefix("tool-result") {
        let Some((_, result)) = &prompt.tool_result else {
            return String::new();
        };
        let mut value = result;
        for part in field.split('.').filter(|p| !p.is_empty()) {
            match value.get(part) {
                Some(v) => value = v,
                None => return String::new(),
            }
        }
        return match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
    }
    String::new()
}

/// A rough token count (about four characters a token), as usage figures need one.
#[must_use]
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn script() -> Script {
        Script::parse(
            r#"
rules:
  - when: { prompt-matches: "(?i)weather in (?P<city>\\w+)" }
    reply: { function-call: { name: get_weather, arguments: { city: "{{city}}" } } }
  - when: { tool-result: get_weather }
    reply: { text: "It is {{tool-result.temperature}} degrees in {{tool-result.city}}." }
default: { text: "Echo: {{prompt}}" }
"#,
            Path::new("t.yaml"),
        )
        .unwrap()
    }

    #[test]
    fn function_call_needs_declared_tool() {
        let mut p = Prompt {
            user: "What is the weather in Aarhus?".into(),
            ..Prompt::default()
        };
        assert_eq!(
            script().answer(&p),
            Reply::Text("Echo: What is the weather in Aarhus?".into())
        );
        p.tools = vec!["get_weather".into()];
        assert_eq!(
            script().answer(&p),
            Reply::FunctionCall {
                name: "get_weather".into(),
                arguments: json!({"city": "Aarhus"})
            }
        );
        p.tool_result = Some((
            "get_weather".into(),
            json!({"temperature": 21, "city": "Aarhus"}),
        ));
        assert_eq!(
            script().answer(&p),
            Reply::Text("It is 21 degrees in Aarhus.".into())
        );
    }

    #[test]
    fn errors_name_file_and_position() {
        let err = Script::parse(
            "rules:\n  - when: { prompt-contain: x }\n    reply: { text: y }\n",
            Path::new("bad.yaml"),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("failed to parse fixture file bad.yaml:"),
            "{msg}"
        );
        assert!(msg.contains("unknown field `prompt-contain`"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
        let err = Script::parse("rules:\n  - when: {}\n    reply: {}\n", Path::new("b.yaml"))
            .unwrap_err();
        assert!(
            err.to_string().contains("rules[0].reply: exactly one of"),
            "{err}"
        );
        let err = Script::parse(
            "rules:\n  - when: {}\n    reply: { text: a, json: {} }\n",
            Path::new("b.yaml"),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("exactly one of `text`, `function-call` or `json`"),
            "{err}"
        );
    }

    #[test]
    fn json_replies_are_filled_and_rules_named() {
        let s = Script::parse(
            r#"
rules:
  - name: lead-json
    when: { prompt-matches: "lead (?P<who>\\w+)" }
    reply: { json: { name: "{{who}}", score: 3, email: null } }
  - when: { prompt-contains: plain }
    reply: { text: plain }
"#,
            Path::new("t.yaml"),
        )
        .unwrap();
        let ask = |user: &str| Prompt {
            user: user.into(),
            ..Prompt::default()
        };
        let (reply, rule) = s.answer_by_rule(&ask("a lead Ada"));
        assert_eq!(rule, Some("lead-json"));
        let Reply::Text(text) = reply else {
            panic!("{reply:?}")
        };
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            json!({"name": "Ada", "score": 3, "email": null})
        );
        assert_eq!(s.answer_by_rule(&ask("plain")).1, Some("rules[1]"));
        assert_eq!(s.answer_by_rule(&ask("other")).1, None);
    }

    #[test]
    fn transcripts_by_tone_match_within_five_percent() {
        let s = Script::parse(
            "transcripts: { default: plain, by-tone: { 440: four forty, 880: eight eighty } }\n",
            Path::new("t.yaml"),
        )
        .unwrap();
        assert_eq!(s.transcript_of_tone(Some(437.5)), "four forty");
        assert_eq!(s.transcript_of_tone(Some(900.0)), "eight eighty");
        assert_eq!(s.transcript_of_tone(Some(600.0)), "plain");
        assert_eq!(s.transcript_of_tone(None), "plain");
    }

    #[test]
    fn builtins_parse() {
        let _ = Script::builtin_openai();
        let _ = Script::builtin_gemini();
    }
}
