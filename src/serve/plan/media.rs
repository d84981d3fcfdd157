//! Media types: what `Content-Type` an object is sent with.
//!
//! Owns: the one table from a key's extension (case-insensitive) to its media
//! type, `application/octet-stream` for anything else. It is pure and must
//! never look at an object's bytes (no sniffing): the key says what it is.

/// The media type of a key, from its extension.
pub fn content_type(key: &str) -> &'static str {
    let ext = key.rsplit_once('.').map_or("", |(_, e)| e);
    let ext = ext.as_bytes();
    let is = |name: &str| ext.eq_ignore_ascii_case(name.as_bytes());
    if is("mp4") || is("m4v") {
        "video/mp4"
    } else if is("m4s") {
        "video/iso.segment"
    } else if is("m4a") {
        "audio/mp4"
    } else if is("ts") {
        "video/mp2t"
    } else if is("m3u8") {
        "application/vnd.apple.mpegurl"
    } else if is("mpd") {
        "application/dash+xml"
    } else if is("webm") {
        "video/webm"
    } else if is("mkv") {
        "video/x-matroska"
    } else if is("vtt") {
        "text/vtt"
    } else if is("ttml") || is("dfxp") {
        "application/ttml+xml"
    } else if is("json") {
        "application/json"
    } else if is("jpg") || is("jpeg") {
        "image/jpeg"
    } else if is("png") {
        "image/png"
    } else if is("txt") {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        assert_eq!(content_type("a/b.M4S"), "video/iso.segment");
        assert_eq!(content_type("x.ts"), "video/mp2t");
        assert_eq!(content_type("a/b.Mp4"), "video/mp4");
        assert_eq!(content_type("noext"), "application/octet-stream");
        assert_eq!(content_type("dir.mp4/noext"), "application/octet-stream");
    }
}
