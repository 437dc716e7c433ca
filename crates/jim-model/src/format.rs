//! Media formats, written as the seed's numbers.

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

macro_rules! numbered_format {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($variant:ident = $num:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $(
                #[doc = concat!("`", stringify!($num), "`")]
                $variant = $num,
            )+
        }

        impl $name {
            /// What the field holds, for error messages.
            pub const EXPECTED: &'static str =
                concat!("one of the ", $what, " codes ", $(stringify!($num), " ",)+ "(", $(stringify!($variant), " ",)+ ")");

            /// The format for its wire number.
            pub const fn from_number(n: u64) -> Option<$name> {
                match n {
                    $($num => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// The wire number of the format.
            pub const fn number(self) -> u8 {
                self as u8
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_u8(self.number())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let n = u64::deserialize(deserializer)?;
                $name::from_number(n).ok_or_else(|| {
                    de::Error::invalid_value(de::Unexpected::Unsigned(n), &$name::EXPECTED)
                })
            }
        }
    };
}

numbered_format!(
    /// Image format of an `image` message, or of a video's thumbnail.
    ImageFormat, "image format" { Jpg = 0, Gif = 1, Png = 2, Bmp = 3 }
);
numbered_format!(
    /// Document format of a `file` message.
    FileFormat, "file format" { Doc = 0, Docx = 1, Ppt = 2, Xls = 3 }
);
numbered_format!(
    /// Container format of a `video` message.
    VideoFormat, "video format" { Mp4 = 0, Mov = 1, Wmv = 2, Flv = 3, Avi = 4, Mkv = 5 }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_numbers_on_the_wire() {
        assert_eq!(serde_json::to_string(&ImageFormat::Png).unwrap(), "2");
        assert_eq!(
            serde_json::from_str::<VideoFormat>("5").unwrap(),
            VideoFormat::Mkv
        );
        assert_eq!(FileFormat::from_number(1), Some(FileFormat::Docx));
        let err = serde_json::from_str::<ImageFormat>("4").unwrap_err().to_string();
        assert!(err.contains("one of the image format codes 0 1 2 3"), "{err}");
        assert!(serde_json::from_str::<ImageFormat>("\"png\"").is_err());
    }
}
