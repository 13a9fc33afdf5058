//! The start and length an MP4 edit list (`moov/trak/edts/elst`) gives a track: AAC in MP4
//! starts with encoder priming (1024 or 2112 samples) that the edit list tells players to
//! skip. symphonia reads but does not apply edit lists, so the decoder does it here, as
//! ffmpeg does: the first edit that maps media time skips that much of the track's start and
//! keeps its duration.

use std::io::{Read, Seek, SeekFrom};

/// Frames of a track to skip at its start and, when the edit says, to keep after that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Edit {
    /// Frames to drop at the start (in the track's own sample rate).
    pub skip: u64,
    /// Frames to keep after those, if the edit gives a duration.
    pub keep: Option<u64>,
}

/// Boxes read at one level before giving up.
const MAX_BOXES: usize = 10_000;
/// The largest box body read into memory (an `elst`, `tkhd`, `mdhd` or `mvhd`).
const MAX_SMALL_BOX: u64 = 1 << 20;

/// The edit of the track whose `tkhd` id is `track_id` at `sample_rate`; `None` when the file
/// has no usable edit list (or is not MP4). Never fails: a damaged file gets no edit.
pub(crate) fn track_edit<R: Read + Seek>(
    reader: &mut R,
    track_id: u32,
    sample_rate: u32,
) -> Option<Edit> {
    let end = reader.seek(SeekFrom::End(0)).ok()?;
    let moov = find_child(reader, 0, end, b"moov")?;
    let movie_timescale = header_timescale(&child_body(reader, moov, b"mvhd")?)?;
    let mut at = moov.0;
    for _ in 0..MAX_BOXES {
        let trak = next_box(reader, at, moov.1)?;
        at = trak.end;
        if &trak.kind != b"trak" {
            continue;
        }
        let track = (trak.body, trak.end);
        if tkhd_id(&child_body(reader, track, b"tkhd")?)? != track_id {
            continue;
        }
        let edts = find_child(reader, track.0, track.1, b"edts")?;
        let elst = child_body(reader, edts, b"elst")?;
        let mdia = find_child(reader, track.0, track.1, b"mdia")?;
        let media_timescale = header_timescale(&child_body(reader, mdia, b"mdhd")?)?;
        let (duration, media_time) = first_mapped_edit(&elst)?;
        let to_frames = |value: u64, timescale: u32| {
            (u128::from(value) * u128::from(sample_rate) / u128::from(timescale.max(1))) as u64
        };
        return Some(Edit {
            skip: to_frames(media_time, media_timescale),
            keep: (duration > 0).then(|| to_frames(duration, movie_timescale)),
        });
    }
    None
}

/// One box: its type, where its body starts and where it ends.
struct BoxAt {
    kind: [u8; 4],
    body: u64,
    end: u64,
}

/// The box starting at `at`, if it lies within `limit`.
fn next_box<R: Read + Seek>(reader: &mut R, at: u64, limit: u64) -> Option<BoxAt> {
    if at.checked_add(8)? > limit {
        return None;
    }
    reader.seek(SeekFrom::Start(at)).ok()?;
    let mut header = [0u8; 8];
    reader.read_exact(&mut header).ok()?;
    let size = u64::from(u32::from_be_bytes([
        header[0], header[1], header[2], header[3],
    ]));
    let kind = [header[4], header[5], header[6], header[7]];
    let (body, end) = match size {
        0 => (at + 8, limit),
        1 => {
            let mut large = [0u8; 8];
            reader.read_exact(&mut large).ok()?;
            (at + 16, at.checked_add(u64::from_be_bytes(large))?)
        }
        size => (at + 8, at.checked_add(size)?),
    };
    (end >= body && end <= limit).then_some(BoxAt { kind, body, end })
}

/// The body range of the first child of type `kind` within `[start, end)`.
fn find_child<R: Read + Seek>(
    reader: &mut R,
    start: u64,
    end: u64,
    kind: &[u8; 4],
) -> Option<(u64, u64)> {
    let mut at = start;
    for _ in 0..MAX_BOXES {
        let found = next_box(reader, at, end)?;
        if &found.kind == kind {
            return Some((found.body, found.end));
        }
        at = found.end;
    }
    None
}

/// The body of the first child of type `kind` within `parent`, if small.
fn child_body<R: Read + Seek>(
    reader: &mut R,
    parent: (u64, u64),
    kind: &[u8; 4],
) -> Option<Vec<u8>> {
    let range = find_child(reader, parent.0, parent.1, kind)?;
    read_box(reader, range)
}

/// A small box's body.
fn read_box<R: Read + Seek>(reader: &mut R, (start, end): (u64, u64)) -> Option<Vec<u8>> {
    let len = end.checked_sub(start)?;
    if len > MAX_SMALL_BOX {
        return None;
    }
    reader.seek(SeekFrom::Start(start)).ok()?;
    let mut body = vec![0u8; len as usize];
    reader.read_exact(&mut body).ok()?;
    Some(body)
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn be_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// The timescale of an `mvhd` or `mdhd` body (version 0 or 1).
fn header_timescale(body: &[u8]) -> Option<u32> {
    match body.first()? {
        0 => be_u32(body, 12),
        1 => be_u32(body, 20),
        _ => None,
    }
}

/// The track id of a `tkhd` body.
fn tkhd_id(body: &[u8]) -> Option<u32> {
    match body.first()? {
        0 => be_u32(body, 12),
        1 => be_u32(body, 20),
        _ => None,
    }
}

/// `(segment duration, media time)` of the first edit that maps media (not an empty edit).
fn first_mapped_edit(body: &[u8]) -> Option<(u64, u64)> {
    let version = *body.first()?;
    let count = be_u32(body, 4)? as usize;
    let entry = if version == 1 { 20 } else { 12 };
    (0..count.min(MAX_BOXES)).find_map(|i| {
        let at = 8 + i * entry;
        let (duration, media_time) = if version == 1 {
            (be_u64(body, at)?, be_u64(body, at + 8)? as i64)
        } else {
            (
                u64::from(be_u32(body, at)?),
                i64::from(be_u32(body, at + 4)? as i32),
            )
        };
        u64::try_from(media_time).ok().map(|time| (duration, time))
    })
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(body);
        out
    }

    fn header(version: u8, at: usize, value: u32, len: usize) -> Vec<u8> {
        let mut body = vec![0u8; len];
        body[0] = version;
        body[at..at + 4].copy_from_slice(&value.to_be_bytes());
        body
    }

    fn movie(track_id: u32, edits: &[(u32, i32)]) -> Vec<u8> {
        let mut elst = vec![0u8; 4];
        elst.extend_from_slice(&(edits.len() as u32).to_be_bytes());
        for &(duration, time) in edits {
            elst.extend_from_slice(&duration.to_be_bytes());
            elst.extend_from_slice(&time.to_be_bytes());
            elst.extend_from_slice(&0x0001_0000u32.to_be_bytes());
        }
        let trak = [
            boxed(b"tkhd", &header(0, 12, track_id, 84)),
            boxed(b"edts", &boxed(b"elst", &elst)),
            boxed(b"mdia", &boxed(b"mdhd", &header(0, 12, 44_100, 24))),
        ]
        .concat();
        let moov = [
            boxed(b"mvhd", &header(0, 12, 1_000, 100)),
            boxed(b"trak", &trak),
        ]
        .concat();
        [boxed(b"ftyp", b"M4A \0\0\0\0"), boxed(b"moov", &moov)].concat()
    }

    #[test]
    fn reads_the_first_mapped_edit_of_the_track() {
        let file = movie(1, &[(500, -1), (1_000, 1_024)]);
        assert_eq!(
            track_edit(&mut Cursor::new(&file), 1, 44_100),
            Some(Edit {
                skip: 1_024,
                keep: Some(44_100)
            })
        );
        assert_eq!(track_edit(&mut Cursor::new(&file), 2, 44_100), None);
    }

    #[test]
    fn damaged_files_have_no_edit() {
        let file = movie(1, &[(1_000, 1_024)]);
        for cut in [0, 7, 20, file.len() / 2, file.len() - 1] {
            assert_eq!(track_edit(&mut Cursor::new(&file[..cut]), 1, 44_100), None);
        }
        let mut huge = file.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(track_edit(&mut Cursor::new(&huge), 1, 44_100), None);
    }
}
