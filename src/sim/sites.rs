//! Sites and drives: `sites/{hostname}:/sites/{name}`, `sites/{id}/drive(s)`, `drives/{id}`.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::drive::Drive;
use super::error::{GraphError, GraphResult};
use super::graph::{Request, SiteSuffix};
use super::state::Site;

fn site_json(site: &Site) -> Value {
    let name = &site.name;
    json!({
        "id": site.id,
        "name": name,
        "displayName": name,
        "webUrl": format!("https://{}/sites/{name}", site.hostname),
        "siteCollection": { "hostname": site.hostname },
    })
}

pub fn drive_json(drive: &Drive) -> Value {
    json!({
        "id": drive.id,
        "name": drive.name,
        "driveType": "documentLibrary",
        "webUrl": format!("https://{}/sites/{}/{}", drive.hostname, drive.site_name, drive.url_name.replace(' ', "%20")),
        "quota": {
            "total": drive.quota_total,
            "used": drive.used,
            "remaining": drive.quota_total.saturating_sub(drive.used),
            "deleted": 0,
            "state": "normal",
        },
    })
}

/// `GET /sites/...`.
pub fn site(
    r: Request,
    host: Option<String>,
    key: String,
    suffix: SiteSuffix,
) -> GraphResult<Response> {
    let world = r.sim.world.lock();
    let site = world
        .sites
        .iter()
        .find(|s| match &host {
            Some(host) => {
                s.hostname.eq_ignore_ascii_case(host)
                    && key.eq_ignore_ascii_case(&format!("/sites/{}", s.name))
            }
            None => s.id == key,
        })
        .filter(|s| s.tenant_id == r.caller.tenant_id)
        .ok_or_else(|| {
            GraphError::new(
                axum::http::StatusCode::NOT_FOUND,
                "itemNotFound",
                "Requested site could not be found",
            )
        })?;
    r.sim.authorize_site(&r.caller, site)?;
    let drives = site.drives.iter().filter_map(|d| world.drives.get(d));
    let body = match suffix {
        SiteSuffix::None => site_json(site),
        SiteSuffix::Drive => drives
            .into_iter()
            .next()
            .map(drive_json)
            .ok_or_else(GraphError::not_found)?,
        SiteSuffix::Drives => json!({ "value": drives.map(drive_json).collect::<Vec<_>>() }),
    };
    Ok(Json(body).into_response())
}

/// `GET /sites?search=TEXT`: sites of the caller's tenant whose name contains TEXT (`*` for
/// all). Apps limited by Sites.Selected may not search (403), as on SharePoint.
pub fn search(r: Request) -> GraphResult<Response> {
    if r.caller.sites.is_some() {
        return Err(GraphError::access_denied());
    }
    let wanted = r
        .query
        .get("search")
        .map(|s| s.trim().to_lowercase())
        .unwrap_or_default();
    let world = r.sim.world.lock();
    let found: Vec<Value> = world
        .sites
        .iter()
        .filter(|s| s.tenant_id == r.caller.tenant_id)
        .filter(|s| wanted.is_empty() || wanted == "*" || s.name.to_lowercase().contains(&wanted))
        .map(site_json)
        .collect();
    Ok(Json(json!({ "value": found })).into_response())
}

/// `GET /drives/{id}`.
pub fn drive(r: Request, drive_id: &str) -> GraphResult<Response> {
    let world = r.sim.world.lock();
    r.sim.authorize(&world, &r.caller, drive_id, false)?;
    let drive = world
        .drives
        .get(drive_id)
        .ok_or_else(GraphError::not_found)?;
    Ok(Json(drive_json(drive)).into_response())
}
