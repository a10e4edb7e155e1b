//! Sites and drives: `sites/{hostname}:/sites/{name}`, `sites/{id}/drive(s)`, `drives/{id}`,
//! and the site search `sites?search=` (paged; refused to Sites.Selected apps).

use axum::Json;
use axum::response::{IntoResponse, Response};
use percent_encoding::utf8_percent_encode;
use serde_json::{Value, json};

use super::drive::Drive;
use super::error::{GraphError, GraphResult};
use super::graph::{Request, SEGMENT, SiteSuffix};
use super::state::Site;
use crate::wire::Collection;

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

/// Sites in one page of a search unless `$top` says otherwise.
const SEARCH_PAGE: usize = 200;

/// `GET /sites?search=TEXT`: sites of the caller's tenant whose name contains TEXT (`*` or
/// nothing for all), paged as Graph pages collections: `$top` sites a page (1-1000; 200
/// unless given) and an `@odata.nextLink` carrying a `$skiptoken` while more are left. Apps
/// limited by Sites.Selected may not search (403), as on SharePoint.
pub fn search(r: Request) -> GraphResult<Response> {
    if r.caller.sites.is_some() {
        return Err(GraphError::access_denied());
    }
    let asked = r.query.get("search").map(|s| s.trim()).unwrap_or_default();
    let wanted = asked.to_lowercase();
    let top = match r.query.get("$top") {
        None => SEARCH_PAGE,
        Some(top) => top
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| GraphError::invalid(format!("Invalid $top value '{top}'.")))?,
    };
    let skip = match r.query.get("$skiptoken") {
        None => 0,
        Some(token) => token
            .strip_prefix("sites-")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| GraphError::invalid("Invalid $skiptoken."))?,
    };
    let world = r.sim.world.lock();
    let found: Vec<&Site> = world
        .sites
        .iter()
        .filter(|s| s.tenant_id == r.caller.tenant_id)
        .filter(|s| wanted.is_empty() || wanted == "*" || s.name.to_lowercase().contains(&wanted))
        .collect();
    let value: Vec<Value> = found
        .iter()
        .skip(skip)
        .take(top)
        .map(|s| site_json(s))
        .collect();
    let next = skip + value.len();
    let next_link = (next < found.len()).then(|| {
        format!(
            "{}/v1.0/sites?search={}&$top={top}&$skiptoken=sites-{next}",
            r.sim.public_url,
            utf8_percent_encode(asked, SEGMENT)
        )
    });
    Ok(Json(Collection {
        value,
        next_link,
        delta_link: None,
    })
    .into_response())
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
