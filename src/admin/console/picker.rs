//! The folder picker, with the connection's credential: the sites it can see (a search; or a
//! site's address typed, for hidden sites and apps limited by Sites.Selected), a site's
//! libraries (another one is offered to the connection's form, not saved), and the
//! connection's library folder by folder, to choose a mount's or a sync job's remote folder;
//! and the check that a typed folder exists. Every page carries `back`, the console form the
//! chosen folder goes back to.

use std::sync::Arc;

use axum::extract::{Path, Query, State as Extract};
use axum::response::Response;
use futures_util::TryStreamExt;
use minijinja::{Value, context};

use super::{Signed, enc, message, page};
use crate::admin::State;
use crate::config::Section;
use crate::connections::Connection;
use crate::graph::Kind;
use crate::graph::sites::{self, Address, MAX_SITES, Search};

#[derive(serde::Deserialize, Default)]
pub struct Browse {
    path: Option<String>,
    /// The console form to take the chosen folder back to.
    back: Option<String>,
}

/// A console page to go back to, never another site.
fn console_page(back: Option<&str>) -> Option<&str> {
    back.filter(|b| {
        b.starts_with("/console/")
            && !b.starts_with("//")
            && !b.contains('\\')
            && !b.chars().any(char::is_control)
    })
}

/// `back` when it is a console page, else `default`.
pub fn back_or<'a>(back: &'a str, default: &'a str) -> &'a str {
    console_page(Some(back)).unwrap_or(default)
}

/// `key=value&...`, each value encoded.
fn query(pairs: &[(&str, &str)]) -> String {
    let pairs: Vec<String> = pairs
        .iter()
        .map(|(key, value)| format!("{key}={}", enc(value)))
        .collect();
    pairs.join("&")
}

/// The link to picker page `page` (`sites`, `libraries`, `browse`) of connection `name`, with
/// the query `pairs` and `back`.
fn link(name: &str, page: &str, pairs: &[(&str, &str)], back: Option<&str>) -> String {
    let mut pairs = pairs.to_vec();
    pairs.extend(back.map(|b| ("back", b)));
    let link = format!("/console/connections/{}/{page}", enc(name));
    if pairs.is_empty() {
        link
    } else {
        format!("{link}?{}", query(&pairs))
    }
}

/// The page saying that no connection `name` is in force.
async fn absent(state: &State, signed: &Signed, title: &str, name: &str) -> Response {
    message(
        state,
        signed,
        title,
        &format!("No connection {name} is in force."),
        "/console/connections",
    )
    .await
}

/// The breadcrumbs down to the connection's library: all sites, its site, its library.
fn library_crumbs(name: &str, connection: &Connection, back: Option<&str>) -> Vec<Value> {
    let site = &connection.config.site;
    let site_name = site.path.rsplit('/').next().unwrap_or(&site.path);
    vec![
        context! { name => "All sites", href => link(name, "sites", &[], back) },
        context! { name => site_name, href => link(name, "libraries", &[("site", &site.url)], back) },
        context! {
            name => connection.config.drive.clone(),
            href => link(name, "browse", &[("path", "/")], back),
        },
    ]
}

/// `GET /console/connections/{name}/browse?path=/A/B&back=/console/partners/new`: the folder
/// picker: the folders of `path` in the connection's library, each to open or choose; a
/// typed path is checked to exist.
pub async fn browse(
    Extract(state): Extract<Arc<State>>,
    signed: Signed,
    Path(name): Path<String>,
    Query(q): Query<Browse>,
) -> Response {
    let gateway = state.gateway();
    let path = normalize(q.path.as_deref().unwrap_or("/"));
    let back = console_page(q.back.as_deref()).map(str::to_string);
    let Some(connection) = gateway.connections.get(&name) else {
        return absent(&state, &signed, "Browse", &name).await;
    };
    let listed = async {
        let drive = connection.drive().await?;
        if path != "/" {
            let entry = drive.stat(&path).await?;
            if !entry.is_dir {
                return Ok(None);
            }
        }
        let mut folders = Vec::new();
        let mut pages = std::pin::pin!(drive.list(&path));
        while let Some(page) = pages.try_next().await? {
            folders.extend(page.into_iter().filter(|e| e.is_dir).map(|e| e.name));
            if folders.len() >= 5000 {
                break;
            }
        }
        folders.sort_by_key(|n| n.to_lowercase());
        Ok::<_, crate::graph::Error>(Some(folders))
    };
    let (folders, error) = match listed.await {
        Ok(Some(folders)) => (folders, None),
        Ok(None) => (Vec::new(), Some(format!("{path} is a file, not a folder."))),
        Err(e) if e.kind == Kind::NotFound => (
            Vec::new(),
            Some(format!("There is no folder {path} in the library.")),
        ),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let child = |folder: &str| {
        if path == "/" {
            format!("/{folder}")
        } else {
            format!("{path}/{folder}")
        }
    };
    let folders: Vec<Value> = folders
        .iter()
        .map(|f| context! { name => f, path => child(f) })
        .collect();
    let mut crumbs = library_crumbs(&name, connection, back.as_deref());
    let mut at = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        at = format!("{at}/{part}");
        let href = link(&name, "browse", &[("path", &at)], back.as_deref());
        crumbs.push(context! { name => part, href => href });
    }
    let choose = back.as_ref().map(|b| {
        let join = if b.contains('?') { '&' } else { '?' };
        format!("{b}{join}connection={}&remote={}", enc(&name), enc(&path))
    });
    page(
        &state,
        &signed,
        "browse.html",
        context! {
            title => format!("Browse {name}"), nav => "connections", name => name,
            path => path, folders => folders, error => error, crumbs => crumbs,
            back => back, choose => choose,
            library => connection.config.drive.clone(), site => connection.config.site.url.clone(),
        },
    )
    .await
}

#[derive(serde::Deserialize, Default)]
pub struct Sites {
    /// The search text; all sites when empty.
    q: Option<String>,
    back: Option<String>,
}

/// `GET /console/connections/{name}/sites?q=TEXT&back=..`: the sites the connection's
/// credential can see, each leading to its libraries; when the app may not search
/// (Sites.Selected), why, and the box to type a site's address in, which is there for
/// hidden sites anyway.
pub async fn sites(
    Extract(state): Extract<Arc<State>>,
    signed: Signed,
    Path(name): Path<String>,
    Query(q): Query<Sites>,
) -> Response {
    let gateway = state.gateway();
    let back = console_page(q.back.as_deref()).map(str::to_string);
    let Some(connection) = gateway.connections.get(&name) else {
        return absent(&state, &signed, "Sites", &name).await;
    };
    let text = q.q.as_deref().unwrap_or_default().trim();
    let (found, more, refused, error) = match sites::search(&connection.client, text).await {
        Ok(Search::Found { sites, more }) => (sites, more, false, None),
        Ok(Search::Refused) => (Vec::new(), false, true, None),
        Err(e) => (Vec::new(), false, false, Some(e.to_string())),
    };
    let own = &connection.config.site;
    let rows: Vec<Value> = found
        .iter()
        .map(|site| {
            let address = Address::parse(&site.web_url);
            context! {
                name => site.name.clone(),
                url => site.web_url.clone(),
                own => address.as_ref().is_some_and(|a| a.is(&own.host, &own.path)),
                href => address.map(|a| link(&name, "libraries", &[("site", &a.url())], back.as_deref())),
            }
        })
        .collect();
    let own_href = link(&name, "libraries", &[("site", &own.url)], back.as_deref());
    page(
        &state,
        &signed,
        "sites.html",
        context! {
            title => format!("Sites for {name}"), nav => "connections", name => name,
            q => text, sites => rows, more => more, max => MAX_SITES,
            refused => refused, error => error, back => back,
            own_site => own.url.clone(), own_library => connection.config.drive.clone(),
            own_href => own_href,
        },
    )
    .await
}

#[derive(serde::Deserialize, Default)]
pub struct Libraries {
    /// The site's address (typed, pasted, or from the sites page); the connection's own site
    /// when empty.
    site: Option<String>,
    back: Option<String>,
}

/// `GET /console/connections/{name}/libraries?site=URL&back=..`: the site's document
/// libraries. The connection's own library leads to its folders; another one to the
/// connection's form with that site and library filled in (saved only when the administrator
/// presses Save), or to a new connection's.
pub async fn libraries(
    Extract(state): Extract<Arc<State>>,
    signed: Signed,
    Path(name): Path<String>,
    Query(q): Query<Libraries>,
) -> Response {
    let gateway = state.gateway();
    let back = console_page(q.back.as_deref()).map(str::to_string);
    let Some(connection) = gateway.connections.get(&name) else {
        return absent(&state, &signed, "Libraries", &name).await;
    };
    let own = &connection.config.site;
    let typed = match q.site.as_deref().map(str::trim) {
        Some(typed) if !typed.is_empty() => typed.to_string(),
        _ => own.url.clone(),
    };
    let managed = managed_by(&state, &name).await;
    let address = Address::parse(&typed);
    let (found, error) = match libraries_at(connection, address.as_ref(), &typed).await {
        Ok(found) => (found, None),
        Err(error) => (Vec::new(), Some(error)),
    };
    let site = address.as_ref().map_or(typed.clone(), Address::url);
    let own_site = address.as_ref().is_some_and(|a| a.is(&own.host, &own.path));
    let rows: Vec<Value> = found
        .iter()
        .map(|library| {
            let chosen = query(&[("site", &site), ("drive", &library.name)]);
            context! {
                name => library.name.clone(),
                url => library.web_url.clone(),
                kind => library.drive_type.clone(),
                own => own_site && library.name.eq_ignore_ascii_case(&connection.config.drive),
                browse => link(&name, "browse", &[("path", "/")], back.as_deref()),
                use_it => managed.is_none().then(|| format!("/console/connections/{}?{chosen}", enc(&name))),
                new => format!("/console/connections/new?{chosen}"),
            }
        })
        .collect();
    let sites = link(&name, "sites", &[], back.as_deref());
    page(
        &state,
        &signed,
        "libraries.html",
        context! {
            title => format!("Libraries of {site}"), nav => "connections", name => name,
            site => site, typed => typed, libraries => rows, error => error,
            managed => managed, sites => sites, back => back,
        },
    )
    .await
}

/// The configuration file that declares connection `name`, if one does (its form is then
/// read-only).
async fn managed_by(state: &State, name: &str) -> Option<String> {
    match state.gateway().store.get(Section::Connections, name).await {
        Ok(record) => record.and_then(|r| r.managed_by),
        Err(e) => {
            tracing::warn!(error = %crate::logging::chain(&e), connection = %name, "console: reading a connection");
            None
        }
    }
}

/// The libraries of the site at `address` (`typed`, which may be no site address at all), or
/// why not, as the page says it.
async fn libraries_at(
    connection: &Connection,
    address: Option<&Address>,
    typed: &str,
) -> Result<Vec<sites::Library>, String> {
    let Some(address) = address else {
        return Err(format!(
            "{typed} is not the address of a site a connection can use: type \
             https://HOST/sites/NAME or https://HOST/teams/NAME (a library's or a folder's \
             address in the site works too)."
        ));
    };
    sites::libraries(&connection.client, address)
        .await
        .map_err(|e| match e.kind {
            Kind::NotFound => format!("There is no site at {}.", address.url()),
            Kind::PermissionDenied => format!(
                "This app may not read {}: an app limited by Sites.Selected sees only the sites \
                 a tenant administrator granted it (the connection's page shows the Graph call \
                 that grants one).",
                address.url()
            ),
            _ => e.to_string(),
        })
}

/// `path` as an absolute folder path without a trailing slash (`/` for the root).
pub fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .map(str::trim)
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return "/".into();
    }
    format!("/{}", parts.join("/"))
}

/// Whether folder `path` exists in connection `name`'s library: None when it does, else why
/// not.
pub async fn missing_folder(state: &State, name: &str, path: &str) -> Option<String> {
    let gateway = state.gateway();
    let connection = gateway.connections.get(name)?;
    let checked = async {
        let drive = connection.drive().await?;
        drive.stat(&normalize(path)).await
    };
    match checked.await {
        Ok(entry) if entry.is_dir => None,
        Ok(_) => Some(format!(
            "{path} is a file in {name}'s library, not a folder"
        )),
        Err(e) if e.kind == crate::graph::error::Kind::NotFound => {
            Some(format!("there is no folder {path} in {name}'s library"))
        }
        Err(e) => Some(format!("{name}'s library could not be checked: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_paths_are_normalized() {
        assert_eq!(normalize(""), "/");
        assert_eq!(normalize("/"), "/");
        assert_eq!(normalize("Inbound/2026/"), "/Inbound/2026");
        assert_eq!(normalize("//a//./b"), "/a/b");
        assert_eq!(normalize("/a/../b"), "/");
    }

    #[test]
    fn picker_links_encode_every_value() {
        assert_eq!(
            link(
                "a b",
                "sites",
                &[("q", "r&d <lab>")],
                Some("/console/partners/new")
            ),
            "/console/connections/a%20b/sites?q=r%26d%20%3Clab%3E&back=%2Fconsole%2Fpartners%2Fnew"
        );
        assert_eq!(
            link("sp", "sites", &[], None),
            "/console/connections/sp/sites"
        );
    }

    #[test]
    fn the_picker_goes_back_only_to_console_pages() {
        assert_eq!(
            console_page(Some("/console/partners/new")),
            Some("/console/partners/new")
        );
        assert_eq!(console_page(Some("//evil.example/console/")), None);
        assert_eq!(console_page(Some("https://evil.example/")), None);
        assert_eq!(console_page(None), None);
    }
}
