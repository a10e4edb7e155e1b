//! `GET /api/v1/openapi.json`: the admin API's OpenAPI 3.1 document, generated from the
//! handlers' annotations, the error type the handlers answer with, and the record types the
//! configuration file itself is read into (so the document cannot drift from what is accepted).

use axum::Json;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::api::{self, ErrorBody, ErrorDetail};
use super::records;
use crate::session::admission::Session;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "spgate admin API",
        description = "Users, connections, sync jobs, sessions, lockouts and alerts of a running \
            spgate. Records take the keys of the configuration file's [[users]], [[connections]] \
            and [[syncs]]; those the file declares are read-only here (409)."
    ),
    paths(
        records::list_users,
        records::get_user,
        records::create_user,
        records::put_user,
        records::delete_user,
        api::connections,
        records::get_connection,
        records::create_connection,
        records::put_connection,
        records::delete_connection,
        records::test_connection,
        api::enable,
        api::syncs,
        records::get_sync,
        records::create_sync,
        records::put_sync,
        records::delete_sync,
        api::run_sync,
        api::sync_runs,
        records::sessions,
        records::kick,
        api::lockouts,
        api::clear_lockouts,
        api::clear_all_lockouts,
        api::alerts,
        api::alert_history,
        api::cluster,
        api::audit,
        api::reload,
        serve,
    ),
    components(schemas(ErrorBody, ErrorDetail, Session)),
    modifiers(&Bearer),
    security(("bearer" = []))
)]
struct Document;

/// The token scheme: `Authorization: Bearer <[admin] token>`.
struct Bearer;

impl utoipa::Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("[admin] token"))
            .build();
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut document = Document::openapi();
    document.info.version = env!("CARGO_PKG_VERSION").to_string();
    document
}

#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "status",
    responses((status = 200, description = "This document")))]
pub async fn serve() -> Response {
    Json(document()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_api_route_is_documented_with_the_record_schemas() {
        let document = serde_json::to_value(document()).unwrap();
        let paths = document["paths"].as_object().unwrap();
        for path in [
            "/api/v1/users",
            "/api/v1/users/{name}",
            "/api/v1/connections/{name}/test",
            "/api/v1/syncs/{name}/runs",
            "/api/v1/sessions/{id}",
            "/api/v1/alerts/history",
            "/api/v1/cluster",
            "/api/v1/openapi.json",
        ] {
            assert!(paths.contains_key(path), "{path} is not documented");
        }
        let schemas = document["components"]["schemas"].as_object().unwrap();
        let user = &schemas["User"]["properties"];
        assert!(
            user.get("mounts").is_some() && user.get("allow_from").is_some(),
            "{user}"
        );
        assert!(
            schemas["Connection"]["properties"]
                .get("client_secret")
                .is_some()
        );
        assert!(schemas["SyncJob"]["properties"].get("direction").is_some());
        assert!(schemas["ErrorDetail"]["properties"].get("field").is_some());
        assert!(
            document["components"]["securitySchemes"]
                .get("bearer")
                .is_some()
        );
    }
}
