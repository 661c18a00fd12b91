//! Listing the multipart uploads still open under a prefix, so a job can
//! abort the ones its attempts left (a worker killed mid-upload never got
//! to report its upload's id; only the store knows it).
//!
//! The S3 client has no call for this (ListMultipartUploads), so the
//! request's URL is made by the client's own signer (a presigned GET of
//! the bucket with the listing's query): it has the client's addressing
//! (path or virtual-hosted style, the endpoint, the region) and its
//! credentials, and is sent with the client's HTTP options. Pages are
//! followed to the end, each request retried as the client retries its own.

use crate::error::{concise, ErrorDocument};
use crate::{connection, spawn, ErrorKind, ObjectUrl, StoreError, SCHEME};
use object_store::aws::AmazonS3;
use object_store::client::{HttpClient, HttpConnector, HttpRequestBody, ReqwestConnector};
use object_store::path::Path as ObjectPath;
use object_store::signer::{SignedUrlOptions, Signer};
use serde::Deserialize;
use std::time::Duration;

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

/// Where the next page of a listing starts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Markers {
    key: String,
    upload_id: String,
}

/// Tries of one page's request: a transport error, a 5xx or a 429 is tried
/// again after a pause of 100 ms, tripled each time up to 2 s, as the
/// client does with its own requests (within about 3 s in all).
const TRIES: u32 = 5;

/// How long a page's signed URL is good for: enough for its retries.
const URL_LIFETIME: Duration = Duration::from_secs(900);

/// Every multipart upload open under `prefix` (`s3://BUCKET/dir/`).
pub async fn pending_uploads(prefix: &str) -> Result<Vec<PendingUpload>, StoreError> {
    let parsed = ObjectUrl::parse_prefix(prefix)?;
    let conn = connection(&parsed)?;
    let url = prefix.to_string();
    spawn(async move {
        let fail = |Failed(kind, reason): Failed| StoreError::Store {
            url: url.clone(),
            kind,
            reason: format!("listing open uploads: {reason}"),
        };
        let other = |e: &dyn std::fmt::Display| fail(Failed(ErrorKind::Other, e.to_string()));
        let http = ReqwestConnector::default()
            .connect(&conn.options)
            .map_err(|e| other(&e))?;
        let mut found = Vec::new();
        let mut markers: Option<Markers> = None;
        let mut seen = std::collections::HashSet::new();
        loop {
            let target = list_url(&conn.store, &parsed.key, markers.as_ref())
                .await
                .map_err(|e| fail(Failed(crate::error::kind_of(&e), e.to_string())))?;
            let page = fetch_page(&http, &target).await.map_err(fail)?;
            let next = next_markers(&page, &mut seen).map_err(|e| other(&e))?;
            for u in page.upload {
                found.push(PendingUpload {
                    url: format!("{SCHEME}{}/{}", parsed.bucket, u.key),
                    upload_id: u.upload_id,
                });
            }
            match next {
                Some(m) => markers = Some(m),
                None => return Ok(found),
            }
        }
    })
    .await
    .map_err(|e| StoreError::other(prefix, e))?
}

/// The signed URL of one page of the listing of uploads under `key`.
async fn list_url(
    store: &AmazonS3,
    key: &str,
    markers: Option<&Markers>,
) -> object_store::Result<String> {
    let mut query = vec![("uploads", ""), ("prefix", key)];
    if let Some(m) = markers {
        query.push(("key-marker", &m.key));
        query.push(("upload-id-marker", &m.upload_id));
    }
    let options = SignedUrlOptions::default().with_query(query);
    // The bucket itself: the empty path.
    let url = store
        .signed_url_opts(
            http::Method::GET,
            &ObjectPath::from(""),
            URL_LIFETIME,
            &options,
        )
        .await?;
    Ok(url.to_string())
}

/// Why a page could not be had: its kind, and what was said.
struct Failed(ErrorKind, String);

/// The kind of a failed reply with `status`, and its error `document`.
fn reply_kind(status: http::StatusCode, document: Option<&ErrorDocument>) -> ErrorKind {
    match (status.as_u16(), document.map(ErrorDocument::kind)) {
        (_, Some(kind)) if kind != ErrorKind::Other => kind,
        (401 | 403, _) => ErrorKind::AccessDenied,
        (404, _) => ErrorKind::NotFound,
        (412, _) => ErrorKind::PreconditionFailed,
        (429 | 500..=599, _) => ErrorKind::Throttled,
        _ => ErrorKind::Other,
    }
}

/// GETs one page at `url`, retrying what may pass (see [`TRIES`]).
async fn fetch_page(http: &HttpClient, url: &str) -> Result<ListResult, Failed> {
    let mut pause = Duration::from_millis(100);
    let mut tries = 0;
    loop {
        tries += 1;
        let req = http::Request::builder()
            .method("GET")
            .uri(url)
            .body(HttpRequestBody::empty())
            .map_err(|e| Failed(ErrorKind::Other, e.to_string()))?;
        let Failed(kind, why) = match http.execute(req).await {
            Ok(resp) => {
                let status = resp.status();
                let body = resp.into_body().bytes().await;
                match body {
                    Ok(body) if status.is_success() => {
                        return quick_xml::de::from_reader(body.as_ref())
                            .map_err(|e| Failed(ErrorKind::Other, format!("bad reply: {e}")));
                    }
                    Ok(body) => {
                        let text = String::from_utf8_lossy(&body);
                        let kind = reply_kind(status, ErrorDocument::find(&text).as_ref());
                        let why = format!(
                            "HTTP {status}: {}",
                            concise(&text).chars().take(300).collect::<String>()
                        );
                        let passing = status.is_server_error() || status.as_u16() == 429;
                        if !passing {
                            return Err(Failed(kind, why));
                        }
                        Failed(kind, why)
                    }
                    Err(e) => Failed(crate::error::transport_kind(&e), e.to_string()),
                }
            }
            Err(e) => Failed(crate::error::transport_kind(&e), e.to_string()),
        };
        if tries >= TRIES {
            return Err(Failed(kind, format!("{why} (after {tries} tries)")));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 3).min(Duration::from_secs(2));
    }
}

/// Where the listing goes on after `page` (None: it is complete), or why
/// it cannot: a page that says more follow must say from where (the next
/// markers, or at least its last upload), and from somewhere not `seen`
/// before (recorded here), or the listing would stop short or never end.
fn next_markers(
    page: &ListResult,
    seen: &mut std::collections::HashSet<Markers>,
) -> Result<Option<Markers>, String> {
    if !page.is_truncated {
        return Ok(None);
    }
    let next = match (&page.next_key_marker, &page.next_upload_id_marker) {
        (Some(key), Some(upload_id)) if !key.is_empty() => Markers {
            key: key.clone(),
            upload_id: upload_id.clone(),
        },
        // Some stores leave the markers out: go on after the page's last.
        _ => match page.upload.last() {
            Some(u) => Markers {
                key: u.key.clone(),
                upload_id: u.upload_id.clone(),
            },
            None => return Err(
                "the store said more uploads follow but not from where (no markers, no uploads)"
                    .into(),
            ),
        },
    };
    if !seen.insert(next.clone()) {
        return Err(format!(
            "the store gave the same page twice (after {}); the listing does not move on",
            next.key
        ));
    }
    Ok(Some(next))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client of bucket `b` as the environment would make it, with the
    /// given settings (nothing is sent: signing is local).
    fn client(settings: &[(&str, &str)]) -> AmazonS3 {
        crate::use_ring();
        let mut b = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name("b")
            .with_region("eu-west-1")
            .with_access_key_id("AKIDEXAMPLE")
            .with_secret_access_key("secret");
        for (k, v) in settings {
            b = b.with_config(k.parse().unwrap(), *v);
        }
        b.build().unwrap()
    }

    fn url_of(store: &AmazonS3, markers: Option<&Markers>) -> String {
        futures::executor::block_on(list_url(store, "out/run 1/", markers)).unwrap()
    }

    #[test]
    fn the_listing_is_addressed_as_the_client_addresses_its_bucket() {
        // Virtual-hosted (AWS's default style): the bucket in the host.
        let url = url_of(
            &client(&[("aws_virtual_hosted_style_request", "true")]),
            None,
        );
        assert!(
            url.starts_with("https://b.s3.eu-west-1.amazonaws.com/?"),
            "{url}"
        );
        // Path style, and a custom endpoint (a local server).
        let url = url_of(&client(&[]), None);
        assert!(
            url.starts_with("https://s3.eu-west-1.amazonaws.com/b/?"),
            "{url}"
        );
        let local = client(&[
            ("aws_endpoint", "http://127.0.0.1:9000"),
            ("aws_allow_http", "true"),
        ]);
        let url = url_of(&local, None);
        assert!(url.starts_with("http://127.0.0.1:9000/b/?"), "{url}");
        // The listing's query, encoded, and signed.
        for part in ["uploads=", "prefix=out%2Frun%201%2F", "X-Amz-Signature="] {
            assert!(url.contains(part), "{part} in {url}");
        }
        let m = Markers {
            key: "out/mr-out-7".into(),
            upload_id: "u+7".into(),
        };
        let url = url_of(&local, Some(&m));
        assert!(
            url.contains("key-marker=out%2Fmr-out-7") && url.contains("upload-id-marker=u%2B7"),
            "{url}"
        );
    }

    fn page(xml: &str) -> ListResult {
        quick_xml::de::from_reader(xml.as_bytes()).unwrap()
    }

    #[test]
    fn pages_go_on_from_their_markers_or_last_upload_and_must_move_on() {
        let done = page("<R><IsTruncated>false</IsTruncated></R>");
        let fresh = std::collections::HashSet::new;
        assert_eq!(next_markers(&done, &mut fresh()), Ok(None));
        let marked = page(
            "<R><IsTruncated>true</IsTruncated><NextKeyMarker>k2</NextKeyMarker>\
             <NextUploadIdMarker>u2</NextUploadIdMarker>\
             <Upload><Key>k1</Key><UploadId>u1</UploadId></Upload></R>",
        );
        let at_k2 = Markers {
            key: "k2".into(),
            upload_id: "u2".into(),
        };
        assert_eq!(next_markers(&marked, &mut fresh()), Ok(Some(at_k2.clone())));
        // Truncated without markers: after the page's last upload (it used
        // to end the listing there, silently short).
        let unmarked = page(
            "<R><IsTruncated>true</IsTruncated>\
             <Upload><Key>k1</Key><UploadId>u1</UploadId></Upload>\
             <Upload><Key>k2</Key><UploadId>u2</UploadId></Upload></R>",
        );
        assert_eq!(
            next_markers(&unmarked, &mut fresh()),
            Ok(Some(at_k2.clone()))
        );
        // A page that cannot say where to go on, or leads back to where the
        // listing has been (however many pages ago).
        let empty = page("<R><IsTruncated>true</IsTruncated></R>");
        assert!(next_markers(&empty, &mut fresh())
            .unwrap_err()
            .contains("not from where"));
        let mut seen = fresh();
        assert!(next_markers(&marked, &mut seen).is_ok());
        let other = page(
            "<R><IsTruncated>true</IsTruncated><NextKeyMarker>k9</NextKeyMarker>\
             <NextUploadIdMarker>u9</NextUploadIdMarker></R>",
        );
        assert!(next_markers(&other, &mut seen).is_ok());
        assert!(next_markers(&marked, &mut seen)
            .unwrap_err()
            .contains("same page"));
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
