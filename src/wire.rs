//! Plain Microsoft Graph wire types and the quickXorHash.
//!
//! These are the only items shared by the Graph client and the simulator: serde shapes of
//! `driveItem`, collections, upload sessions, error bodies and token responses, exactly as the
//! JSON appears on the wire (see `shared/GRAPH.md`). Behaviour lives elsewhere, so the client and
//! the simulator check each other.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A `driveItem`; optional facets are omitted when absent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DriveItem {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e_tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c_tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_date_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_reference: Option<ItemReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_system_info: Option<FileSystemInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<FolderFacet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileFacet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<DeletedFacet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(
        rename = "@microsoft.graph.downloadUrl",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub download_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub children: Option<Vec<DriveItem>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ItemReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drive_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drive_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FileSystemInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_date_time: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FolderFacet {
    #[serde(default)]
    pub child_count: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FileFacet {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<Hashes>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Hashes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quick_xor_hash: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DeletedFacet {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// A page of a collection (`children`, `drives`, `delta`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Collection<T> {
    pub value: Vec<T>,
    #[serde(
        rename = "@odata.nextLink",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub next_link: Option<String>,
    #[serde(
        rename = "@odata.deltaLink",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub delta_link: Option<String>,
}

/// The answer to `createUploadSession` and to a fragment or status request. Its `Debug` hides
/// the upload URL (pre-authenticated: whoever has it can write the file).
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadSession {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_url: Option<String>,
    pub expiration_date_time: DateTime<Utc>,
    #[serde(default)]
    pub next_expected_ranges: Vec<String>,
}

impl std::fmt::Debug for UploadSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadSession")
            .field("upload_url", &self.upload_url.as_ref().map(|_| "***"))
            .field("expiration_date_time", &self.expiration_date_time)
            .field("next_expected_ranges", &self.next_expected_ranges)
            .finish()
    }
}

/// A Graph error body: `{"error":{"code","message","innerError":{...}}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, alias = "innererror", skip_serializing_if = "Option::is_none")]
    pub inner_error: Option<InnerError>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InnerError {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    #[serde(
        rename = "request-id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub request_id: Option<String>,
    #[serde(
        rename = "client-request-id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_request_id: Option<String>,
    #[serde(
        default,
        alias = "innererror",
        rename = "innerError",
        skip_serializing_if = "Option::is_none"
    )]
    pub inner_error: Option<Box<InnerError>>,
}

/// A successful token response of the Microsoft identity platform.
#[derive(Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    pub token_type: String,
    pub expires_in: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext_expires_in: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// An OpenID Connect id token (JWT), for a sign-in that asked for `openid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("access_token", &"***")
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "***"))
            .field("id_token", &self.id_token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// A token error of the Microsoft identity platform (`AADSTSnnnn`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenError {
    pub error: String,
    #[serde(default)]
    pub error_description: String,
    #[serde(default)]
    pub error_codes: Vec<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

/// The answer to the device-code request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceCode {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub expires_in: u64,
    pub interval: u64,
    #[serde(default)]
    pub message: String,
}

/// The quickXorHash of a byte stream, fed in pieces.
#[derive(Default)]
pub struct QuickXor(quickxorhash::QuickXorHash);

impl QuickXor {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The base64 form Graph uses in `file.hashes.quickXorHash`.
    pub fn finish(&mut self) -> String {
        STANDARD.encode(self.0.finalize())
    }
}

/// The quickXorHash of a whole buffer, base64-encoded.
pub fn quick_xor_hash(bytes: &[u8]) -> String {
    let mut hash = QuickXor::new();
    hash.update(bytes);
    hash.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_xor_hash_matches_reference_vectors() {
        assert_eq!(quick_xor_hash(b""), "AAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        assert_eq!(quick_xor_hash(&[0x4a]), "SgAAAAAAAAAAAAAAAQAAAAAAAAA=");
    }

    #[test]
    fn quick_xor_hash_is_the_same_fed_in_pieces() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let mut pieces = QuickXor::new();
        for chunk in data.chunks(77) {
            pieces.update(chunk);
        }
        assert_eq!(pieces.finish(), quick_xor_hash(&data));
    }

    #[test]
    fn error_body_accepts_both_inner_error_spellings() {
        let old: ErrorResponse = serde_json::from_str(
            r#"{"error":{"code":"x","message":"m","innererror":{"code":"y"}}}"#,
        )
        .unwrap();
        assert_eq!(old.error.inner_error.unwrap().code.as_deref(), Some("y"));
    }

    #[test]
    fn upload_session_debug_hides_its_url() {
        let session: UploadSession = serde_json::from_str(
            r#"{"uploadUrl":"https://x/up?tempauth=SECRET","expirationDateTime":"2026-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        let shown = format!("{session:?}");
        assert!(
            !shown.contains("SECRET") && shown.contains("***"),
            "{shown}"
        );
    }
}
