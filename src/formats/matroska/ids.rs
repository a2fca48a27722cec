//! Element IDs (with their marker bits, as written) of the Matroska elements livemux reads
//! or writes.

pub const EBML: u32 = 0x1A45_DFA3;
pub const EBML_VERSION: u32 = 0x4286;
pub const EBML_READ_VERSION: u32 = 0x42F7;
pub const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
pub const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
pub const DOC_TYPE: u32 = 0x4282;
pub const DOC_TYPE_VERSION: u32 = 0x4287;
pub const DOC_TYPE_READ_VERSION: u32 = 0x4285;

pub const VOID: u32 = 0xEC;
pub const CRC32: u32 = 0xBF;

pub const SEGMENT: u32 = 0x1853_8067;
pub const SEEK_HEAD: u32 = 0x114D_9B74;
pub const SEEK: u32 = 0x4DBB;
pub const SEEK_ID: u32 = 0x53AB;
pub const SEEK_POSITION: u32 = 0x53AC;

pub const INFO: u32 = 0x1549_A966;
pub const TIMESTAMP_SCALE: u32 = 0x2AD7B1;
pub const DURATION: u32 = 0x4489;
pub const MUXING_APP: u32 = 0x4D80;
pub const WRITING_APP: u32 = 0x5741;

pub const TRACKS: u32 = 0x1654_AE6B;
pub const TRACK_ENTRY: u32 = 0xAE;
pub const TRACK_NUMBER: u32 = 0xD7;
pub const TRACK_UID: u32 = 0x73C5;
pub const TRACK_TYPE: u32 = 0x83;
pub const FLAG_LACING: u32 = 0x9C;
pub const DEFAULT_DURATION: u32 = 0x23E383;
pub const LANGUAGE: u32 = 0x22B59C;
pub const CODEC_ID: u32 = 0x86;
pub const CODEC_PRIVATE: u32 = 0x63A2;
pub const CODEC_DELAY: u32 = 0x56AA;
pub const SEEK_PRE_ROLL: u32 = 0x56BB;
pub const VIDEO: u32 = 0xE0;
pub const PIXEL_WIDTH: u32 = 0xB0;
pub const PIXEL_HEIGHT: u32 = 0xBA;
pub const AUDIO: u32 = 0xE1;
pub const SAMPLING_FREQUENCY: u32 = 0xB5;
pub const CHANNELS: u32 = 0x9F;
pub const BIT_DEPTH: u32 = 0x6264;
pub const CONTENT_ENCODINGS: u32 = 0x6D80;
pub const CONTENT_ENCODING: u32 = 0x6240;
pub const CONTENT_ENCODING_SCOPE: u32 = 0x5032;
pub const CONTENT_ENCODING_TYPE: u32 = 0x5033;
pub const CONTENT_COMPRESSION: u32 = 0x5034;
pub const CONTENT_COMP_ALGO: u32 = 0x4254;
pub const CONTENT_COMP_SETTINGS: u32 = 0x4255;

pub const CLUSTER: u32 = 0x1F43_B675;
pub const TIMESTAMP: u32 = 0xE7;
pub const POSITION: u32 = 0xA7;
pub const PREV_SIZE: u32 = 0xAB;
pub const SIMPLE_BLOCK: u32 = 0xA3;
pub const BLOCK_GROUP: u32 = 0xA0;
pub const BLOCK: u32 = 0xA1;
pub const BLOCK_DURATION: u32 = 0x9B;
pub const REFERENCE_BLOCK: u32 = 0xFB;
pub const DISCARD_PADDING: u32 = 0x75A2;
pub const SILENT_TRACKS: u32 = 0x5854;
pub const ENCRYPTED_BLOCK: u32 = 0xAF;

pub const CUES: u32 = 0x1C53_BB6B;
pub const CUE_POINT: u32 = 0xBB;
pub const CUE_TIME: u32 = 0xB3;
pub const CUE_TRACK_POSITIONS: u32 = 0xB7;
pub const CUE_TRACK: u32 = 0xF7;
pub const CUE_CLUSTER_POSITION: u32 = 0xF1;

pub const TAGS: u32 = 0x1254_C367;
pub const TAG: u32 = 0x7373;
pub const CHAPTERS: u32 = 0x1043_A770;
pub const ATTACHMENTS: u32 = 0x1941_A469;

/// Elements that may appear directly inside a Cluster.
pub fn is_cluster_child(id: u32) -> bool {
    matches!(
        id,
        TIMESTAMP | POSITION | PREV_SIZE | SIMPLE_BLOCK | BLOCK_GROUP | SILENT_TRACKS | ENCRYPTED_BLOCK | VOID | CRC32
    )
}

/// The name the Matroska specification gives an element (`"Cluster"`, `"SeekHead"`), for
/// the elements of the EBML header and of the Segment's first two levels that livemux
/// meets; `None` for others.
#[cfg_attr(not(feature = "cli"), allow(dead_code))] // for `livemux probe`
pub fn name(id: u32) -> Option<&'static str> {
    Some(match id {
        EBML => "EBML",
        EBML_VERSION => "EBMLVersion",
        EBML_READ_VERSION => "EBMLReadVersion",
        EBML_MAX_ID_LENGTH => "EBMLMaxIDLength",
        EBML_MAX_SIZE_LENGTH => "EBMLMaxSizeLength",
        DOC_TYPE => "DocType",
        DOC_TYPE_VERSION => "DocTypeVersion",
        DOC_TYPE_READ_VERSION => "DocTypeReadVersion",
        VOID => "Void",
        CRC32 => "CRC-32",
        SEGMENT => "Segment",
        SEEK_HEAD => "SeekHead",
        SEEK => "Seek",
        INFO => "Info",
        TIMESTAMP_SCALE => "TimestampScale",
        DURATION => "Duration",
        MUXING_APP => "MuxingApp",
        WRITING_APP => "WritingApp",
        TRACKS => "Tracks",
        TRACK_ENTRY => "TrackEntry",
        CLUSTER => "Cluster",
        TIMESTAMP => "Timestamp",
        POSITION => "Position",
        PREV_SIZE => "PrevSize",
        SIMPLE_BLOCK => "SimpleBlock",
        BLOCK_GROUP => "BlockGroup",
        SILENT_TRACKS => "SilentTracks",
        ENCRYPTED_BLOCK => "EncryptedBlock",
        CUES => "Cues",
        CUE_POINT => "CuePoint",
        TAGS => "Tags",
        TAG => "Tag",
        CHAPTERS => "Chapters",
        ATTACHMENTS => "Attachments",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn level_one_elements_have_names() {
        use super::*;
        for (id, name) in [(SEGMENT, "Segment"), (SEEK_HEAD, "SeekHead"), (CLUSTER, "Cluster"), (CUES, "Cues")] {
            assert_eq!(super::name(id), Some(name));
        }
        assert_eq!(super::name(0x1234), None);
    }
}
