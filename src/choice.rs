//! Settings whose value is one of a few names (`--likelihood gaussian`, `learn-sigma = "pixel"`,
//! `objective="iwae"`), each declared once with [`choice!`]: the names, their parsing, the message for a name
//! that is none of them, the serde form stored in `config.json`, and, with the `cli` feature, clap's list of
//! values all come from that one declaration.

/// Declares an enum of named choices. `Variant = "name" | "alias"`: the first name is the one printed and
/// stored; aliases are accepted too, and any letter case (`NCHW`, `IWAE`), on the command line as elsewhere.
#[macro_export]
#[doc(hidden)]
macro_rules! choice {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal $(| $alias:literal)* ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
        }

        impl $name {
            /// Every choice, in the order messages and the help list them.
            pub const ALL: &'static [$name] = &[$( $name::$variant ),*];

            /// The name a flag, a config key or a keyword argument takes, and `config.json` stores.
            pub fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )*
                }
            }

            /// The choices' names, comma-separated, for messages.
            pub fn names() -> String {
                Self::ALL.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ")
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> std::result::Result<Self, String> {
                match s.to_ascii_lowercase().as_str() {
                    $( $text $(| $alias)* => Ok($name::$variant), )*
                    _ => Err(format!("'{}' is not one of {}", $crate::notes::printable(s), Self::names())),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        #[cfg(feature = "cli")]
        impl clap::ValueEnum for $name {
            fn value_variants<'a>() -> &'a [Self] {
                Self::ALL
            }

            fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
                let value = clap::builder::PossibleValue::new(self.name());
                Some(match self {
                    $( $name::$variant => value $(.alias($alias))*, )*
                })
            }
        }
    };
}

#[cfg(test)]
mod tests {
    crate::choice! {
        /// A test choice.
        pub enum Fruit {
            /// A.
            Apple = "apple",
            /// B.
            BloodOrange = "blood-orange" | "orange",
        }
    }

    #[test]
    fn names_aliases_and_serde_agree() {
        assert_eq!("orange".parse::<Fruit>(), Ok(Fruit::BloodOrange));
        assert_eq!("Blood-Orange".parse::<Fruit>(), Ok(Fruit::BloodOrange));
        assert_eq!(Fruit::BloodOrange.to_string(), "blood-orange");
        assert_eq!(
            "pear".parse::<Fruit>().unwrap_err(),
            "'pear' is not one of apple, blood-orange"
        );
        let json = serde_json::to_string(&Fruit::BloodOrange).unwrap();
        assert_eq!(json, "\"blood-orange\"");
        assert_eq!(
            serde_json::from_str::<Fruit>(&json).unwrap(),
            Fruit::BloodOrange
        );
        let e = serde_json::from_str::<Fruit>("\"Apples\"").unwrap_err();
        assert!(e.to_string().contains("'Apples' is not one of"), "{e}");
        assert!(serde_json::from_str::<Fruit>("3").is_err());
    }
}
