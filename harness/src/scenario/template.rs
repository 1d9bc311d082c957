//! The file `tekup-harness new scenario NAME` writes: every line explained,
//! and valid as it stands.

/// The commented template of a new scenario named `name`.
pub fn template(name: &str) -> String {
    TEMPLATE.replace("{{name}}", name)
}

const TEMPLATE: &str = r#"# {{name}}: say in one sentence what this scenario proves.
#
# The format: scenarios/README.md; the JSON Schema: `tekup-harness schema`.
# Check this file: `tekup-harness validate scenarios/{{name}}.yaml`.
name: {{name}}
tags: [smoke]
# Fresh tenants are created for every run, so scenarios run in parallel.
# `${acme}` is the tenant's id and `${acme.key}` its API key.
tenants: [acme]
# timeout: 60s        # the whole scenario's deadline
# exclusive: true     # needs the ecosystem alone (chaos; a fault meant to open a breaker)
# defaults: { http: { service: flow-api, tenant: acme, app: flow-web } }
#                     # what every http step leaves out
# examples: [ { status: new }, { status: won } ]
#                     # one case per row, named {{name}}[status=new]; `${status}`
steps:
  # A request as tenant acme's flow-web app; `save` keeps a value of the
  # response (a JSONPath) for later steps as `${lead}`.
  - http:
      service: flow-api
      tenant: acme
      app: flow-web
      request: { method: POST, path: /leads, json: { firstName: Ada, email: "${email}" } }
      expect: { status: 201 }
      save: { lead: $.id }
  # Retried until it passes or `within` runs out; no sleeps.
  - eventually:
      within: 5s
      http:
        service: flow-api
        tenant: acme
        app: flow-web
        request: { method: GET, path: "/leads/${lead}" }
        expect: { status: 200, json: { id: "${lead}" } }
  # Other kinds: ws, sql, redis, mock, stripe, trace, chaos, sleep, and `use:` of a step
  # file under scenarios/steps/ (see scenarios/README.md).
"#;
