//! Listing the multipart uploads still open under a prefix, so a job can
//! abort the ones its attempts left (a worker killed mid-upload never got
//! to report its upload's id; only the store knows it).
//!
//! The S3 client has no call for this (ListMultipartUploads), so the
//! request is built here, signed with the client's own SigV4 signer and
//! credentials, and sent through the client's HTTP connector.

use crate::{connection, spawn, ObjectUrl, StoreError, SCHEME};
use object_store::aws::AwsAuthorizer;
use object_store::client::{HttpConnector, HttpRequestBody, ReqwestConnector};
use serde::Deserialize;

/// An open multipart upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingUpload {
    /// The object it would create, as `s3://BUCKET/KEY`.
    pub url: String,
    /// The store's id of the upload.
    pub upload_id: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ListResult {
    upload: Vec<Upload>,
    is_truncated: bool,
    next_key_marker: Option<String>,
    next_upload_id_marker: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Upload {
    key: String,
    upload_id: String,
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved set).
fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Every multipart upload open under `prefix` (`s3://BUCKET/dir/`).
pub async fn pending_uploads(prefix: &str) -> Result<Vec<PendingUpload>, StoreError> {
    let parsed = ObjectUrl::parse_prefix(prefix)?;
    let conn = connection(&parsed)?;
    let url = prefix.to_string();
    spawn(async move {
        let fail = |reason: String| StoreError::Store {
            url: url.clone(),
            reason,
        };
        let cred = conn
            .store
            .credentials()
            .get_credential()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let http = ReqwestConnector::default()
            .connect(&conn.options)
            .map_err(|e| fail(e.to_string()))?;
        let mut found = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            let mut query = format!("prefix={}&uploads=", encode(&parsed.key));
            if let Some((k, u)) = &markers {
                query.push_str(&format!(
                    "&key-marker={}&upload-id-marker={}",
                    encode(k),
                    encode(u)
                ));
            }
            let uri = format!(
                "{}/{}?{query}",
                conn.endpoint.trim_end_matches('/'),
                parsed.bucket
            );
            let mut req = http::Request::builder()
                .method("GET")
                .uri(&uri)
                .body(HttpRequestBody::empty())
                .map_err(|e| fail(e.to_string()))?;
            AwsAuthorizer::new(&cred, "s3", &conn.region)
                .try_authorize(&mut req, None)
                .map_err(|e| fail(e.to_string()))?;
            let resp = http.execute(req).await.map_err(|e| fail(e.to_string()))?;
            let status = resp.status();
            let body = resp
                .into_body()
                .bytes()
                .await
                .map_err(|e| fail(e.to_string()))?;
            if !status.is_success() {
                let text = String::from_utf8_lossy(&body);
                return Err(fail(format!(
                    "listing open uploads: HTTP {status}: {}",
                    text.chars().take(300).collect::<String>()
                )));
            }
            let page: ListResult = quick_xml::de::from_reader(body.as_ref())
                .map_err(|e| fail(format!("listing open uploads: bad reply: {e}")))?;
            for u in page.upload {
                found.push(PendingUpload {
                    url: format!("{SCHEME}{}/{}", parsed.bucket, u.key),
                    upload_id: u.upload_id,
                });
            }
            match (
                page.is_truncated,
                page.next_key_marker,
                page.next_upload_id_marker,
            ) {
                (true, Some(k), Some(u)) => markers = Some((k, u)),
                _ => return Ok(found),
            }
        }
    })
    .await
    .map_err(|e| StoreError::Store {
        url: prefix.to_string(),
        reason: e.to_string(),
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("out/run 1/"), "out%2Frun%201%2F");
        assert_eq!(encode("a-b_c.d~e"), "a-b_c.d~e");
    }

    #[test]
    fn listing_replies_parse() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>b</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>
  <NextKeyMarker>out/mr-out-1</NextKeyMarker><NextUploadIdMarker>u2</NextUploadIdMarker>
  <MaxUploads>1000</MaxUploads><IsTruncated>true</IsTruncated>
  <Upload><Key>out/mr-out-0</Key><UploadId>u1</UploadId><Initiated>2026-01-01T00:00:00.000Z</Initiated></Upload>
  <Upload><Key>out/mr-out-1</Key><UploadId>u2</UploadId></Upload>
</ListMultipartUploadsResult>"#;
        let r: ListResult = quick_xml::de::from_reader(xml.as_bytes()).unwrap();
        assert_eq!(r.upload.len(), 2);
        assert_eq!(r.upload[1].key, "out/mr-out-1");
        assert_eq!(r.upload[0].upload_id, "u1");
        assert!(r.is_truncated);
        assert_eq!(r.next_upload_id_marker.as_deref(), Some("u2"));
        let empty: ListResult = quick_xml::de::from_reader(
            b"<ListMultipartUploadsResult><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>"
                .as_ref(),
        )
        .unwrap();
        assert!(empty.upload.is_empty() && !empty.is_truncated);
    }
}
