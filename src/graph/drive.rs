//! One SharePoint document library, addressed by drive-relative paths (`/Inbound/a.txt`):
//! stat, list (streamed page by page), mkdir, rename/move, delete, copy, set modification time,
//! delta. Downloads are in [`super::download`], uploads in [`super::upload`].

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::{Stream, TryStreamExt};
use reqwest::{Method, header};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::client::Client;
use super::error::{Error, Kind, Result};
use super::names::{self, encode_path, segments};
use crate::wire::{Collection, DriveItem};

/// What spgate needs to know about an item.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: String,
    pub name: String,
    pub size: u64,
    pub is_dir: bool,
    /// `fileSystemInfo.lastModifiedDateTime` (client-settable), else `lastModifiedDateTime`.
    pub modified: DateTime<Utc>,
    pub etag: Option<String>,
    pub ctag: Option<String>,
    pub quick_xor_hash: Option<String>,
    pub parent_id: Option<String>,
}

impl From<DriveItem> for Entry {
    fn from(item: DriveItem) -> Self {
        let modified = item
            .file_system_info
            .as_ref()
            .and_then(|f| f.last_modified_date_time)
            .or(item.last_modified_date_time)
            .unwrap_or_default();
        Entry {
            is_dir: item.folder.is_some() || item.root.is_some(),
            quick_xor_hash: item
                .file
                .as_ref()
                .and_then(|f| f.hashes.as_ref())
                .and_then(|h| h.quick_xor_hash.clone()),
            parent_id: item.parent_reference.as_ref().and_then(|p| p.id.clone()),
            name: item.name.unwrap_or_default(),
            size: item.size.unwrap_or(0),
            etag: item.e_tag,
            ctag: item.c_tag,
            id: item.id,
            modified,
        }
    }
}

/// A library's size limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Deserialize)]
#[serde(default)]
pub struct Quota {
    pub total: u64,
    pub used: u64,
    pub remaining: u64,
}

/// One page of delta.
#[derive(Debug)]
pub struct DeltaPage {
    pub items: Vec<DriveItem>,
    pub next_link: Option<String>,
    pub delta_link: Option<String>,
}

pub struct Drive {
    pub client: Arc<Client>,
    pub id: String,
    /// The library's server-relative path (`sites/partners/Shared Documents`), for the
    /// 400-character rule.
    prefix: String,
    /// The library's quota as last heard (when it was opened, or [`Drive::refresh_quota`]).
    quota: parking_lot::Mutex<Option<Quota>>,
}

/// The parent path and the name of a drive path.
pub fn split_parent(path: &str) -> Result<(String, String)> {
    let parts = segments(path);
    let (name, parents) = parts
        .split_last()
        .ok_or_else(|| Error::new(Kind::Invalid, "the library root has no name"))?;
    Ok((
        parents.iter().map(|p| format!("/{p}")).collect(),
        name.to_string(),
    ))
}

impl Drive {
    /// Finds the site by host and path, then its library called `drive_name`.
    pub async fn open(
        client: Arc<Client>,
        host: &str,
        site_path: &str,
        drive_name: &str,
    ) -> Result<Drive> {
        let site_id = Drive::find_site(&client, host, site_path).await?;
        Drive::open_in(client, &site_id, drive_name).await
    }

    /// The id of the site at `host` and server-relative `site_path` (one request).
    pub async fn find_site(client: &Client, host: &str, site_path: &str) -> Result<String> {
        let site: serde_json::Value = get_json(
            client,
            &client.url(&format!("/sites/{host}:{}", encode_path(site_path))),
        )
        .await?;
        let id = site["id"]
            .as_str()
            .ok_or_else(|| Error::new(Kind::Invalid, "the site answer has no id"))?;
        Ok(id.to_string())
    }

    /// The library called `drive_name` of site `site_id` (one request).
    pub async fn open_in(client: Arc<Client>, site_id: &str, drive_name: &str) -> Result<Drive> {
        let drives: Collection<serde_json::Value> = get_json(
            &client,
            &client.url(&format!("/sites/{}/drives", names::encode_segment(site_id))),
        )
        .await?;
        let drive = drives
            .value
            .iter()
            .find(|d| {
                d["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(drive_name))
            })
            .ok_or_else(|| {
                let names: Vec<&str> = drives
                    .value
                    .iter()
                    .filter_map(|d| d["name"].as_str())
                    .collect();
                Error::new(
                    Kind::NotFound,
                    format!(
                        "the site has no library named '{drive_name}' (it has: {})",
                        names.join(", ")
                    ),
                )
            })?;
        let id = drive["id"].as_str().unwrap_or_default().to_string();
        let web_url = drive["webUrl"].as_str().unwrap_or_default();
        let prefix = web_url
            .split_once("://")
            .and_then(|(_, rest)| rest.split_once('/'))
            .map(|(_, path)| {
                percent_encoding::percent_decode_str(path)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .unwrap_or_default();
        let quota = serde_json::from_value::<Quota>(drive["quota"].clone()).ok();
        Ok(Drive {
            client,
            id,
            prefix,
            quota: parking_lot::Mutex::new(quota),
        })
    }

    /// The library's quota as last heard.
    pub fn quota(&self) -> Option<Quota> {
        *self.quota.lock()
    }

    /// Counts `bytes` just stored against the quota as last heard, so that it stays close
    /// without asking (a replaced file's old version still counts: SharePoint keeps it).
    pub fn note_stored(&self, bytes: u64) {
        if let Some(quota) = self.quota.lock().as_mut() {
            quota.used = quota.used.saturating_add(bytes);
            quota.remaining = quota.remaining.saturating_sub(bytes);
        }
    }

    /// Asks SharePoint for the library's quota now (one request) and remembers it.
    pub async fn refresh_quota(&self) -> Result<Option<Quota>> {
        let url = self.client.url(&format!(
            "/drives/{}?$select=quota",
            names::encode_segment(&self.id)
        ));
        let drive: serde_json::Value = get_json(&self.client, &url).await?;
        // A drive answer without a quota (it happens) keeps the one heard before.
        let mut known = self.quota.lock();
        if let Ok(quota) = serde_json::from_value::<Quota>(drive["quota"].clone()) {
            *known = Some(quota);
        }
        Ok(*known)
    }

    /// The Graph URL of the item at `path` plus `suffix` (`/children`, `/content`, ...).
    pub fn item_url(&self, path: &str, suffix: &str) -> String {
        let encoded = encode_path(path);
        let drive = names::encode_segment(&self.id);
        if encoded.is_empty() {
            self.client.url(&format!("/drives/{drive}/root{suffix}"))
        } else {
            self.client
                .url(&format!("/drives/{drive}/root:{encoded}:{suffix}"))
        }
    }

    fn id_url(&self, id: &str, suffix: &str) -> String {
        self.client.url(&format!(
            "/drives/{}/items/{}{suffix}",
            names::encode_segment(&self.id),
            names::encode_segment(id)
        ))
    }

    /// Checks every name of a path that is about to be created, and its length.
    pub fn check_new_path(&self, path: &str, is_folder: bool) -> Result<()> {
        let parts = segments(path);
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            if last && is_folder {
                names::check_folder_name(part, i == 0)?;
            } else {
                names::check_name(part)?;
            }
        }
        names::check_length(
            &self.prefix,
            &parts.iter().map(|p| format!("/{p}")).collect::<String>(),
        )?;
        Ok(())
    }

    pub async fn stat(&self, path: &str) -> Result<Entry> {
        let item: DriveItem = get_json(&self.client, &self.item_url(path, "")).await?;
        Ok(item.into())
    }

    pub async fn stat_id(&self, id: &str) -> Result<Entry> {
        let item: DriveItem = get_json(&self.client, &self.id_url(id, "")).await?;
        Ok(item.into())
    }

    /// The children of the folder at `path`, page by page (1,000 per request).
    pub fn list<'a>(&'a self, path: &str) -> impl Stream<Item = Result<Vec<Entry>>> + Send + 'a {
        let first = self.children_url(path);
        futures_util::stream::try_unfold(Some(first), move |next| async move {
            let Some(url) = next else { return Ok(None) };
            Ok(Some(self.children_page(&url).await?))
        })
    }

    /// The URL of the first page of a folder's children.
    pub fn children_url(&self, path: &str) -> String {
        format!("{}?$top=1000", self.item_url(path, "/children"))
    }

    /// One page of children and the URL of the next page.
    pub async fn children_page(&self, url: &str) -> Result<(Vec<Entry>, Option<String>)> {
        let page: Collection<DriveItem> = get_json(&self.client, url).await?;
        Ok((
            page.value.into_iter().map(Entry::from).collect(),
            page.next_link,
        ))
    }

    pub async fn list_all(&self, path: &str) -> Result<Vec<Entry>> {
        let pages: Vec<Vec<Entry>> = self.list(path).try_collect().await?;
        Ok(pages.into_iter().flatten().collect())
    }

    /// Creates the folder at `path` (its parent must exist).
    pub async fn mkdir(&self, path: &str) -> Result<Entry> {
        self.check_new_path(path, true)?;
        let (parent, name) = split_parent(path)?;
        let url = self.item_url(&parent, "/children");
        let body = json!({"name": name, "folder": {}, "@microsoft.graph.conflictBehavior": "fail"});
        let item: DriveItem = send_json(&self.client, Method::POST, &url, &body).await?;
        Ok(item.into())
    }

    pub async fn delete(&self, path: &str) -> Result<()> {
        if segments(path).is_empty() {
            return Err(Error::new(
                Kind::PermissionDenied,
                "the library root cannot be deleted",
            ));
        }
        let url = self.item_url(path, "");
        self.client.send(|http| http.delete(&url), true).await?;
        Ok(())
    }

    /// Deletes the item `id` (to the recycle bin), only if its eTag is still `if_match`.
    pub async fn delete_item(&self, id: &str, if_match: Option<&str>) -> Result<()> {
        let url = self.id_url(id, "");
        self.client
            .send(
                |http| {
                    let request = http.delete(&url);
                    match if_match {
                        Some(tag) => request.header(header::IF_MATCH, tag),
                        None => request,
                    }
                },
                true,
            )
            .await?;
        Ok(())
    }

    /// Renames and/or moves `from` to `to`; with `replace` an existing file at `to` is replaced.
    pub async fn rename(&self, from: &str, to: &str, replace: bool) -> Result<Entry> {
        self.check_new_path(to, false)?;
        let (from_parent, _) = split_parent(from)?;
        let (to_parent, name) = split_parent(to)?;
        let mut body = json!({ "name": name });
        if from_parent != to_parent {
            let parent = self.stat(&to_parent).await?;
            body["parentReference"] = json!({ "id": parent.id });
        }
        let mut url = self.item_url(from, "");
        if replace {
            url.push_str("?@microsoft.graph.conflictBehavior=replace");
        }
        let item: DriveItem = send_json(&self.client, Method::PATCH, &url, &body).await?;
        Ok(item.into())
    }

    /// Sets `fileSystemInfo.lastModifiedDateTime` (SharePoint keeps whole seconds).
    pub async fn set_modified(&self, path: &str, modified: DateTime<Utc>) -> Result<Entry> {
        let url = self.item_url(path, "");
        let body = json!({ "fileSystemInfo": { "lastModifiedDateTime": modified.to_rfc3339_opts(chrono::SecondsFormat::Secs, true) } });
        let item: DriveItem = send_json(&self.client, Method::PATCH, &url, &body).await?;
        Ok(item.into())
    }

    /// Copies `from` to `to` (same library) and waits for the copy to complete.
    pub async fn copy(&self, from: &str, to: &str) -> Result<Entry> {
        self.check_new_path(to, false)?;
        let (to_parent, name) = split_parent(to)?;
        let parent = self.stat(&to_parent).await?;
        let url = self.item_url(from, "/copy");
        let body =
            json!({ "parentReference": { "driveId": self.id, "id": parent.id }, "name": name });
        let response = self
            .client
            .send(|http| http.post(&url).json(&body), true)
            .await?;
        let monitor = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error::new(Kind::Invalid, "the copy answer has no monitor URL"))?
            .to_string();
        for attempt in 0..600u32 {
            let status: serde_json::Value = self
                .client
                .send(|http| http.get(&monitor), false)
                .await?
                .json()
                .await
                .map_err(|e| Error::new(Kind::Invalid, format!("copy monitor: {e}")))?;
            match status["status"].as_str() {
                Some("completed") => {
                    let id = status["resourceId"].as_str().unwrap_or_default();
                    return self.stat_id(id).await;
                }
                Some("failed") => {
                    return Err(Error::new(
                        Kind::Invalid,
                        format!(
                            "the copy failed: {}",
                            status["error"]["message"]
                                .as_str()
                                .unwrap_or("no reason given")
                        ),
                    ));
                }
                _ => {
                    tokio::time::sleep(super::client::backoff(
                        attempt.min(4),
                        std::time::Duration::from_millis(100),
                        std::time::Duration::from_secs(2),
                    ))
                    .await
                }
            }
        }
        Err(Error::new(
            Kind::Unavailable,
            "the copy did not finish in time",
        ))
    }

    /// One page of changes: from `link` (a next or delta link), or the start when `None`.
    pub async fn delta(&self, link: Option<&str>) -> Result<DeltaPage> {
        let url = match link {
            Some(link) => link.to_string(),
            None => self.client.url(&format!(
                "/drives/{}/root/delta",
                names::encode_segment(&self.id)
            )),
        };
        let page: Collection<DriveItem> = get_json(&self.client, &url).await?;
        Ok(DeltaPage {
            items: page.value,
            next_link: page.next_link,
            delta_link: page.delta_link,
        })
    }
}

pub async fn get_json<T: DeserializeOwned>(client: &Client, url: &str) -> Result<T> {
    let response = client.send(|http| http.get(url), true).await?;
    decode(response).await
}

pub async fn send_json<T: DeserializeOwned>(
    client: &Client,
    method: Method,
    url: &str,
    body: &serde_json::Value,
) -> Result<T> {
    let response = client
        .send(|http| http.request(method.clone(), url).json(body), true)
        .await?;
    decode(response).await
}

pub async fn decode<T: DeserializeOwned>(response: reqwest::Response) -> Result<T> {
    let bytes = response.bytes().await.map_err(|e| {
        Error::new(
            Kind::Unavailable,
            format!("reading SharePoint's answer failed: {e}"),
        )
        .with_source(e)
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::new(
            Kind::Invalid,
            format!("SharePoint's answer was not what spgate expected: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::split_parent;

    #[test]
    fn parents_and_names() {
        assert_eq!(
            split_parent("/a/b/c.txt").unwrap(),
            ("/a/b".to_string(), "c.txt".to_string())
        );
        assert_eq!(
            split_parent("c.txt").unwrap(),
            (String::new(), "c.txt".to_string())
        );
        assert!(split_parent("/").is_err());
    }
}
