//! `s3://BUCKET[/PREFIX]`: where a backup is, as the operator names it.

use std::fmt;
use std::str::FromStr;

/// A bucket and a key prefix. The prefix is kept as written (`s3://b/p` and `s3://b/p/`
/// name one backup: docs/layout.md#object-keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    pub prefix: String,
}

impl FromStr for S3Url {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let rest = s
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{s:?} is not an s3:// URL (s3://BUCKET/PREFIX)"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("{s:?} names no bucket (s3://BUCKET/PREFIX)"));
        }
        solace_functions::request::check_bucket_name(bucket).map_err(|e| e.to_string())?;
        Ok(S3Url {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

impl fmt::Display for S3Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_splits_at_the_first_slash_and_keeps_the_prefix_as_written() {
        let u: S3Url = "s3://my-bucket/a/b/".parse().expect("a URL");
        assert_eq!(
            (u.bucket.as_str(), u.prefix.as_str()),
            ("my-bucket", "a/b/")
        );
        let u: S3Url = "s3://my-bucket".parse().expect("a URL");
        assert_eq!((u.bucket.as_str(), u.prefix.as_str()), ("my-bucket", ""));
        assert_eq!(u.to_string(), "s3://my-bucket/");
    }

    #[test]
    fn malformed_urls_are_refused_with_the_reason() {
        for (url, says) in [
            ("my-bucket/x", "is not an s3:// URL"),
            ("s3:///x", "names no bucket"),
            ("s3://My_Bucket/x", "is not an S3 bucket name"),
            ("https://b/x", "is not an s3:// URL"),
        ] {
            let err = url.parse::<S3Url>().expect_err("refused");
            assert!(err.contains(says), "{url}: {err}");
        }
    }
}
