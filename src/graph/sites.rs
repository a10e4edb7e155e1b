//! The sites and document libraries a connection's credential can see, for choosing a
//! connection's library: a site search (`GET /sites?search=`, page by page, at most
//! [`MAX_SITES`]), a site's libraries (`GET /sites/{host}:/sites/NAME:/drives`), and
//! [`Address`], a site URL as Graph addresses it. Every request goes through
//! [`Client::send`] (one per page); the answers are plain data.
//!
//! Apps limited to the sites granted to them (`Sites.Selected`) may not search: SharePoint
//! answers 403, which [`search`] reports as [`Search::Refused`] so that a caller can ask for
//! the site's address instead.

use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::client::Client;
use super::drive::get_json;
use super::error::{Kind, Result};
use super::names::encode_path;
use crate::wire::Collection;

/// The most sites one search gathers (SharePoint pages them; a tenant may have thousands).
pub const MAX_SITES: usize = 500;
/// The most libraries gathered for one site.
pub const MAX_LIBRARIES: usize = 500;

/// A site as a search finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub id: String,
    /// `displayName`, else `name`, else the URL.
    pub name: String,
    pub web_url: String,
}

/// A library (a drive) of a site.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Library {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub web_url: String,
    /// `documentLibrary` for a site's libraries.
    #[serde(default)]
    pub drive_type: String,
}

/// What a site search came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Search {
    /// The sites found, in SharePoint's order; `more` when [`MAX_SITES`] cut the list short.
    Found { sites: Vec<Site>, more: bool },
    /// SharePoint refused to search (403): the app is limited to the sites granted to it
    /// (`Sites.Selected`), which are addressed by their URL instead.
    Refused,
}

/// A site as Graph's JSON has it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SiteJson {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    web_url: String,
}

impl From<SiteJson> for Site {
    fn from(site: SiteJson) -> Site {
        let name = [site.display_name, site.name]
            .into_iter()
            .flatten()
            .find(|n| !n.trim().is_empty())
            .unwrap_or_else(|| site.web_url.clone());
        Site {
            id: site.id,
            name,
            web_url: site.web_url,
        }
    }
}

/// A site a connection can name: `https://HOST/sites/NAME` or `https://HOST/teams/NAME`, as
/// Graph addresses it by path (`/sites/HOST:/sites/NAME:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// `https` or `http`.
    scheme: String,
    /// Host name, lower-cased, with `:port` if the URL had one.
    pub host: String,
    /// Server-relative path, decoded: `/sites/NAME` or `/teams/NAME`.
    pub path: String,
}

impl Address {
    /// The site of a URL as typed or pasted: `https://HOST/sites/NAME`, also with more after
    /// the name (a library's or a folder's address: the site is its first two segments), with
    /// a query or a trailing slash. None for anything else: another scheme, no host, the root
    /// site or a personal site (a connection cannot name those).
    pub fn parse(url: &str) -> Option<Address> {
        let (scheme, rest) = url.trim().split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "https" && scheme != "http" {
            return None;
        }
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if host.is_empty() || host.contains(['@', ' ', '\\']) {
            return None;
        }
        let mut segments = path.split('/').filter(|s| !s.is_empty());
        let kind = segments.next()?.to_ascii_lowercase();
        let name = percent_decode_str(segments.next()?)
            .decode_utf8()
            .ok()?
            .trim()
            .to_string();
        let bad_name = name.is_empty() || name.contains(['/', '\\', ':']) || name == "..";
        if !["sites", "teams"].contains(&kind.as_str()) || bad_name {
            return None;
        }
        Some(Address {
            scheme,
            host: host.to_ascii_lowercase(),
            path: format!("/{kind}/{name}"),
        })
    }

    /// The site's URL as a connection's `site` takes it (the name decoded).
    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.host, self.path)
    }

    /// Whether this is the site at `host` and `path` (a connection's), ignoring case.
    pub fn is(&self, host: &str, path: &str) -> bool {
        self.host.eq_ignore_ascii_case(host) && self.path.eq_ignore_ascii_case(path)
    }

    /// `/sites/HOST:/sites/NAME:`, the site in a Graph path.
    fn graph_path(&self) -> String {
        format!("/sites/{}:{}:", self.host, encode_path(&self.path))
    }
}

/// The sites whose names or descriptions match `text` (`*` or nothing: every site the
/// credential can see), at most [`MAX_SITES`]; a refusal (403) is [`Search::Refused`].
pub async fn search(client: &Client, text: &str) -> Result<Search> {
    let text = match text.trim() {
        "" => "*",
        text => text,
    };
    let first = client.url(&format!(
        "/sites?search={}",
        utf8_percent_encode(text, NON_ALPHANUMERIC)
    ));
    match gather::<SiteJson>(client, first, MAX_SITES).await {
        Ok((sites, more)) => Ok(Search::Found {
            sites: sites.into_iter().map(Site::from).collect(),
            more,
        }),
        Err(e) if e.kind == Kind::PermissionDenied && e.status == Some(403) => Ok(Search::Refused),
        Err(e) => Err(e),
    }
}

/// The libraries of the site at `site`, at most [`MAX_LIBRARIES`] (one request per page; the
/// site is addressed by path, so it takes no request of its own). A site that does not exist
/// is [`Kind::NotFound`]; one the app was not granted, [`Kind::PermissionDenied`].
pub async fn libraries(client: &Client, site: &Address) -> Result<Vec<Library>> {
    let first = client.url(&format!("{}/drives", site.graph_path()));
    let (libraries, _) = gather(client, first, MAX_LIBRARIES).await?;
    Ok(libraries)
}

/// The values of a paged collection from `first` on, following `@odata.nextLink`, until there
/// are `cap`; answers them and whether more were left.
async fn gather<T: DeserializeOwned>(
    client: &Client,
    first: String,
    cap: usize,
) -> Result<(Vec<T>, bool)> {
    let mut values = Vec::new();
    let mut next = Some(first);
    while let Some(url) = next {
        let page: Collection<T> = get_json(client, &url).await?;
        values.extend(page.value);
        next = page.next_link;
        if values.len() >= cap {
            let more = values.len() > cap || next.is_some();
            values.truncate(cap);
            return Ok((values, more));
        }
    }
    Ok((values, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_addresses_from_typed_and_pasted_urls() {
        let a = Address::parse(" https://Contoso.SharePoint.com/sites/partners/ ").unwrap();
        assert_eq!(a.host, "contoso.sharepoint.com");
        assert_eq!(a.path, "/sites/partners");
        assert_eq!(a.url(), "https://contoso.sharepoint.com/sites/partners");
        assert_eq!(
            a.graph_path(),
            "/sites/contoso.sharepoint.com:/sites/partners:"
        );
        let pasted = "https://contoso.sharepoint.com/Teams/Ops%20Team/Shared%20Documents/Forms/AllItems.aspx?id=x";
        let b = Address::parse(pasted).unwrap();
        assert_eq!(b.url(), "https://contoso.sharepoint.com/teams/Ops Team");
        assert_eq!(
            b.graph_path(),
            "/sites/contoso.sharepoint.com:/teams/Ops%20Team:"
        );
        assert!(b.is("CONTOSO.sharepoint.com", "/teams/ops team"));
        assert_eq!(
            Address::parse("http://127.0.0.1:9000/sites/x")
                .unwrap()
                .host,
            "127.0.0.1:9000"
        );
        for bad in [
            "",
            "contoso.sharepoint.com/sites/x",
            "ftp://h/sites/x",
            "https:///sites/x",
            "https://h",
            "https://h/",
            "https://h/sites/",
            "https://h/personal/adele",
            "https://u@h/sites/x",
            "https://h/sites/a%2Fb",
            "https://h/sites/%FF",
        ] {
            assert_eq!(Address::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn sites_and_libraries_from_graph_json() {
        let page: Collection<SiteJson> = serde_json::from_str(
            r#"{"value":[
                {"id":"h,1,2","name":"partners","displayName":"Partners","webUrl":"https://h/sites/partners"},
                {"id":"h,3,4","name":"ops","displayName":"","webUrl":"https://h/teams/ops"},
                {"id":"h,5,6","webUrl":"https://h"}
            ],"@odata.nextLink":"https://graph/v1.0/sites?search=*&$skiptoken=2"}"#,
        )
        .unwrap();
        assert_eq!(
            page.next_link.as_deref(),
            Some("https://graph/v1.0/sites?search=*&$skiptoken=2")
        );
        let names: Vec<String> = page.value.into_iter().map(|s| Site::from(s).name).collect();
        assert_eq!(names, ["Partners", "ops", "https://h"]);
        let drives: Collection<Library> = serde_json::from_str(
            r#"{"value":[{"id":"b!x","name":"Documents","driveType":"documentLibrary",
                "webUrl":"https://h/sites/partners/Shared%20Documents","quota":{"total":1}}]}"#,
        )
        .unwrap();
        assert_eq!(
            drives.value,
            [Library {
                id: "b!x".into(),
                name: "Documents".into(),
                web_url: "https://h/sites/partners/Shared%20Documents".into(),
                drive_type: "documentLibrary".into(),
            }]
        );
        assert!(drives.next_link.is_none());
    }
}
