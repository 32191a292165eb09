//! The schema model (RFC 7643 §2, §3, §7): one description of every attribute of User, Group,
//! the Enterprise User extension and the common attributes every resource has. Validation,
//! PATCH, filters, projection, rendering, the store's indexes and `/Schemas` all read it.
//!
//! Beyond the RFC's characteristics each attribute has a `Role`: how scimd keeps and finds it
//! (a column, an index, relation rows, a computed value, a write-only secret). Code outside this
//! module asks for roles and never recognises an attribute by its name.

use serde_json::{Value, json};

pub(crate) const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub(crate) const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub(crate) const ENTERPRISE_USER: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Type {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Binary,
    Reference,
    Complex,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Returned {
    Always,
    Never,
    Default,
    Request,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Uniqueness {
    None,
    Server,
    Global,
}

/// How scimd keeps, finds and shows an attribute, beyond its RFC 7643 characteristics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Kept in the stored document exactly as sent (almost every attribute).
    Document,
    /// `schemas`: written from the schemas a resource's document uses.
    Schemas,
    /// `id`: assigned by the server, a column of its own.
    Id,
    /// `externalId`: kept in the document and in an indexed column.
    ExternalId,
    /// `meta`: written from the row's columns (created, modified, version).
    Meta,
    /// The attribute unique per provider regardless of case (User `userName`, Group
    /// `displayName`): kept in the document and, case-folded, in an indexed column.
    UniqueName,
    /// Kept as rows of the `members` table, one per value, never in the document (Group
    /// `members`): changing one value never rewrites the others.
    Relation,
    /// Computed from other resources' relation rows, nested ones included (User `groups`).
    Computed,
    /// A reference to another resource of the same provider, which Microsoft Entra ID sends as
    /// a bare id, an object or a one-element list, and clears with `""` (enterprise `manager`).
    Reference,
    /// Write-only: hashed with argon2id, kept apart from the document, never returned
    /// (`password`).
    Secret,
    /// A sub-attribute of a `Relation` or `Computed` value: the referenced resource's id.
    RefId,
    /// A sub-attribute of a `Relation` or `Computed` value: its URI, built from the id.
    RefUri,
    /// A sub-attribute of a `Relation` or `Computed` value: its display name.
    RefDisplay,
    /// A sub-attribute of a `Relation` value: the referenced resource's type (User or Group);
    /// of a `Computed` value: whether the membership is direct or through a nested group.
    RefType,
    /// `meta.resourceType`: the row's kind.
    ResourceType,
    /// `meta.created`: a column.
    Created,
    /// `meta.lastModified`: a column.
    Modified,
    /// `meta.location`: built from the provider's base URL and the id.
    Location,
    /// `meta.version`: the weak ETag of the row's version counter.
    Version,
    /// Whether the resource may be used (User `active`): a resource whose value is `false` is
    /// deactivated (out of the LDAP directory, its change recorded as a deactivation); one
    /// without a value is active. The store reads it in SQL at `ACTIVE_JSON_PATH`.
    Active,
}

/// The JSON path (SQLite's `json_extract`) of the attribute with `Role::Active` in a stored
/// document, as a literal for SQL written with `concat!`; the built-in model checks that its
/// attribute is there (`the_active_attribute_is_where_sql_reads_it`).
macro_rules! active_json_path {
    () => {
        "$.active"
    };
}
pub(crate) use active_json_path;

/// The longest identifier (userName, a group's displayName, externalId, a member's id) or
/// password a request may set, in bytes.
pub(crate) const IDENTIFIER_MAX: usize = 1024;

/// The longest value of any other string attribute, in bytes (a photo URL, a certificate).
pub(crate) const TEXT_MAX: usize = 64 * 1024;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Attribute {
    pub(crate) name: &'static str,
    pub(crate) role: Role,
    /// For a sub-attribute of a multi-valued attribute: its values are kept case-folded in the
    /// `value_index` table, so `eq` on it is an index lookup (`emails.value`).
    pub(crate) indexed: bool,
    pub(crate) ty: Type,
    pub(crate) multi_valued: bool,
    pub(crate) required: bool,
    pub(crate) case_exact: bool,
    pub(crate) mutability: Mutability,
    pub(crate) returned: Returned,
    pub(crate) uniqueness: Uniqueness,
    pub(crate) canonical_values: &'static [&'static str],
    pub(crate) reference_types: &'static [&'static str],
    pub(crate) sub_attributes: &'static [Attribute],
    pub(crate) description: &'static str,
    /// Shown in the summary at the top of a resource's page in the console.
    pub(crate) summary: bool,
}

const fn attr(name: &'static str, ty: Type, description: &'static str) -> Attribute {
    Attribute {
        name,
        role: Role::Document,
        indexed: false,
        ty,
        multi_valued: false,
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        returned: Returned::Default,
        uniqueness: Uniqueness::None,
        canonical_values: &[],
        reference_types: &[],
        sub_attributes: &[],
        description,
        summary: false,
    }
}

const fn string(name: &'static str, description: &'static str) -> Attribute {
    attr(name, Type::String, description)
}

const fn complex(
    name: &'static str,
    description: &'static str,
    subs: &'static [Attribute],
) -> Attribute {
    let mut a = attr(name, Type::Complex, description);
    a.sub_attributes = subs;
    a
}

impl Attribute {
    const fn multi(mut self) -> Self {
        self.multi_valued = true;
        self
    }
    const fn required(mut self) -> Self {
        self.required = true;
        self
    }
    const fn case_exact(mut self) -> Self {
        self.case_exact = true;
        self
    }
    const fn mutability(mut self, m: Mutability) -> Self {
        self.mutability = m;
        self
    }
    const fn returned(mut self, r: Returned) -> Self {
        self.returned = r;
        self
    }
    const fn unique(mut self, u: Uniqueness) -> Self {
        self.uniqueness = u;
        self
    }
    const fn canonical(mut self, values: &'static [&'static str]) -> Self {
        self.canonical_values = values;
        self
    }
    const fn refs(mut self, types: &'static [&'static str]) -> Self {
        self.reference_types = types;
        self
    }
    const fn role(mut self, role: Role) -> Self {
        self.role = role;
        self
    }
    const fn summary(mut self) -> Self {
        self.summary = true;
        self
    }
    const fn index(mut self) -> Self {
        self.indexed = true;
        self
    }

    /// The sub-attribute a filter or PATCH means when it names a complex attribute without
    /// one: `value`, which RFC 7643 §2.4 defines for multi-valued attributes (`emails eq "x"`,
    /// a member list `[{"value": id}]`).
    pub(crate) fn default_sub(&self) -> Option<&'static Attribute> {
        self.sub("value")
    }

    /// The sub-attribute with `role`, if any.
    pub(crate) fn sub_with(&self, role: Role) -> Option<&'static Attribute> {
        self.sub_attributes.iter().find(|a| a.role == role)
    }

    /// The sub-attribute whose values are indexed, if any.
    pub(crate) fn indexed_sub(&self) -> Option<&'static Attribute> {
        self.sub_attributes.iter().find(|a| a.indexed)
    }

    /// Whether values identify something (a unique name, an external id, the id of a
    /// referenced resource): they are compared and looked up, so they hold no control
    /// characters and stay short.
    pub(crate) fn is_identifier(&self) -> bool {
        matches!(
            self.role,
            Role::UniqueName | Role::ExternalId | Role::Id | Role::RefId
        )
    }

    /// The longest value of this attribute, in bytes of UTF-8: `IDENTIFIER_MAX` for
    /// identifiers and a password, `TEXT_MAX` for any other string.
    pub(crate) fn max_len(&self) -> usize {
        if self.is_identifier() || self.role == Role::Secret {
            IDENTIFIER_MAX
        } else {
            TEXT_MAX
        }
    }

    /// Whether values come from membership rows rather than from the stored document.
    pub(crate) fn is_linked(&self) -> bool {
        matches!(self.role, Role::Relation | Role::Computed)
    }

    /// A sub-attribute by name, ignoring case.
    pub(crate) fn sub(&self, name: &str) -> Option<&'static Attribute> {
        self.sub_attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    pub(crate) fn is_complex(&self) -> bool {
        self.ty == Type::Complex
    }

    pub(crate) fn to_json(self) -> Value {
        let mut v = json!({
            "name": self.name,
            "type": match self.ty {
                Type::String => "string",
                Type::Boolean => "boolean",
                Type::Decimal => "decimal",
                Type::Integer => "integer",
                Type::DateTime => "dateTime",
                Type::Binary => "binary",
                Type::Reference => "reference",
                Type::Complex => "complex",
            },
            "multiValued": self.multi_valued,
            "description": self.description,
            "required": self.required,
            "caseExact": self.case_exact,
            "mutability": match self.mutability {
                Mutability::ReadOnly => "readOnly",
                Mutability::ReadWrite => "readWrite",
                Mutability::Immutable => "immutable",
                Mutability::WriteOnly => "writeOnly",
            },
            "returned": match self.returned {
                Returned::Always => "always",
                Returned::Never => "never",
                Returned::Default => "default",
                Returned::Request => "request",
            },
            "uniqueness": match self.uniqueness {
                Uniqueness::None => "none",
                Uniqueness::Server => "server",
                Uniqueness::Global => "global",
            },
        });
        if !self.canonical_values.is_empty() {
            v["canonicalValues"] = json!(self.canonical_values);
        }
        if !self.reference_types.is_empty() {
            v["referenceTypes"] = json!(self.reference_types);
        }
        if !self.sub_attributes.is_empty() {
            v["subAttributes"] = self
                .sub_attributes
                .iter()
                .copied()
                .map(Attribute::to_json)
                .collect();
        }
        v
    }
}

#[derive(Debug)]
pub struct Schema {
    pub id: &'static str,
    pub(crate) name: &'static str,
    pub(crate) description: &'static str,
    pub(crate) attributes: &'static [Attribute],
}

impl Schema {
    /// An attribute by name, ignoring case.
    pub(crate) fn attribute(&self, name: &str) -> Option<&'static Attribute> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    pub fn to_json(&self) -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": self.attributes.iter().copied().map(Attribute::to_json).collect::<Vec<_>>(),
        })
    }
}

// Sub-attributes shared by the multi-valued attributes of RFC 7643 §2.4.
const fn value_sub(description: &'static str) -> Attribute {
    string("value", description)
}
const DISPLAY: Attribute = string("display", "A human-readable name for the value.");
const PRIMARY: Attribute = attr(
    "primary",
    Type::Boolean,
    "Marks the preferred value; at most one value may be primary.",
);
const fn typed(canonical: &'static [&'static str]) -> Attribute {
    string("type", "What the value is used for.").canonical(canonical)
}

const WORK_HOME_OTHER: &[&str] = &["work", "home", "other"];

const EMAIL_SUBS: &[Attribute] = &[
    value_sub("The email address, as sent.").index(),
    DISPLAY,
    typed(WORK_HOME_OTHER),
    PRIMARY,
];
const PHONE_SUBS: &[Attribute] = &[
    value_sub("The phone number, stored exactly as sent."),
    DISPLAY,
    typed(&["work", "home", "mobile", "fax", "pager", "other"]),
    PRIMARY,
];
const IM_SUBS: &[Attribute] = &[
    value_sub("The instant messaging address."),
    DISPLAY,
    typed(&["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"]),
    PRIMARY,
];
const PHOTO_SUBS: &[Attribute] = &[
    attr("value", Type::Reference, "URL of the image.").refs(&["external"]),
    DISPLAY,
    typed(&["photo", "thumbnail"]),
    PRIMARY,
];
const ADDRESS_SUBS: &[Attribute] = &[
    string("formatted", "The full address, formatted for display."),
    string("streetAddress", "Street, house number and similar."),
    string("locality", "City or locality."),
    string("region", "State or region."),
    string("postalCode", "Postal code."),
    string("country", "Country, as an ISO 3166-1 alpha-2 code."),
    typed(WORK_HOME_OTHER),
    PRIMARY,
];
const GROUP_REF_SUBS: &[Attribute] = &[
    string("value", "The id of the group.")
        .mutability(Mutability::ReadOnly)
        .role(Role::RefId),
    attr("$ref", Type::Reference, "URI of the group.")
        .refs(&["User", "Group"])
        .mutability(Mutability::ReadOnly)
        .role(Role::RefUri),
    string("display", "The group's displayName.")
        .mutability(Mutability::ReadOnly)
        .role(Role::RefDisplay),
    string(
        "type",
        "\"direct\" or \"indirect\" (through a nested group).",
    )
    .canonical(&["direct", "indirect"])
    .mutability(Mutability::ReadOnly)
    .role(Role::RefType),
];
const PLAIN_MULTI_SUBS: &[Attribute] = &[
    value_sub("The value."),
    DISPLAY,
    string("type", "A label for the value."),
    PRIMARY,
];
const CERT_SUBS: &[Attribute] = &[
    attr("value", Type::Binary, "A DER certificate, base64-encoded."),
    DISPLAY,
    string("type", "A label for the certificate."),
    PRIMARY,
];
const NAME_SUBS: &[Attribute] = &[
    string("formatted", "The full name, formatted for display."),
    string(
        "familyName",
        "Family name (last name in most Western languages).",
    ),
    string(
        "givenName",
        "Given name (first name in most Western languages).",
    ),
    string("middleName", "Middle name(s)."),
    string("honorificPrefix", "Title before the name, e.g. \"Ms.\"."),
    string("honorificSuffix", "Suffix after the name, e.g. \"III\"."),
];

pub(crate) static USER_SCHEMA: Schema = Schema {
    id: USER,
    name: "User",
    description: "User Account",
    attributes: &[
        string("userName", "Unique identifier of the user for the identity provider; unique per provider regardless of case.")
            .required()
            .unique(Uniqueness::Server)
            .role(Role::UniqueName)
            .summary(),
        complex("name", "The components of the user's name.", NAME_SUBS),
        string("displayName", "The name shown for the user.").summary(),
        string("nickName", "A casual name for the user."),
        attr("profileUrl", Type::Reference, "URL of the user's online profile.").refs(&["external"]),
        string("title", "Job title.").summary(),
        string("userType", "Relationship to the organisation, e.g. Employee or Contractor."),
        string("preferredLanguage", "Preferred written or spoken language, e.g. en-US."),
        string("locale", "Locale for formatting dates, numbers and currency, e.g. en-US."),
        string("timezone", "Time zone in IANA form, e.g. Europe/Amsterdam."),
        attr("active", Type::Boolean, "Whether the account may be used.").role(Role::Active),
        string("password", "Write-only: accepted and stored as an argon2id hash, never returned.")
            .mutability(Mutability::WriteOnly)
            .returned(Returned::Never)
            .role(Role::Secret),
        complex("emails", "Email addresses.", EMAIL_SUBS)
            .multi()
            .summary(),
        complex("phoneNumbers", "Phone numbers.", PHONE_SUBS)
            .multi()
            .summary(),
        complex("ims", "Instant messaging addresses.", IM_SUBS).multi(),
        complex("photos", "URLs of photos of the user.", PHOTO_SUBS).multi(),
        complex("addresses", "Physical mailing addresses.", ADDRESS_SUBS).multi(),
        complex("groups", "Groups the user belongs to, directly or through nested groups; change memberships through the Group.", GROUP_REF_SUBS)
            .multi()
            .mutability(Mutability::ReadOnly)
            .role(Role::Computed),
        complex("entitlements", "Entitlements of the user.", PLAIN_MULTI_SUBS).multi(),
        complex("roles", "Roles of the user.", PLAIN_MULTI_SUBS).multi(),
        complex("x509Certificates", "Certificates of the user.", CERT_SUBS).multi(),
    ],
};

const MEMBER_SUBS: &[Attribute] = &[
    string(
        "value",
        "The id of a User or Group of the same identity provider.",
    )
    .mutability(Mutability::Immutable)
    .case_exact()
    .role(Role::RefId),
    attr("$ref", Type::Reference, "URI of the member.")
        .refs(&["User", "Group"])
        .mutability(Mutability::Immutable)
        .role(Role::RefUri),
    string(
        "display",
        "A name for the member, stored as the client sent it.",
    )
    .role(Role::RefDisplay),
    string("type", "\"User\" or \"Group\" (computed).")
        .canonical(&["User", "Group"])
        .mutability(Mutability::Immutable)
        .role(Role::RefType),
];

pub(crate) static GROUP_SCHEMA: Schema = Schema {
    id: GROUP,
    name: "Group",
    description: "Group",
    attributes: &[
        string(
            "displayName",
            "The group's name; unique per provider regardless of case.",
        )
        .required()
        .unique(Uniqueness::Server)
        .role(Role::UniqueName),
        complex(
            MEMBERS_ATTRIBUTE,
            "Users and Groups in the group.",
            MEMBER_SUBS,
        )
        .multi()
        .role(Role::Relation),
    ],
};

/// A Group's membership attribute.
pub(crate) const MEMBERS_ATTRIBUTE: &str = "members";

const MANAGER_SUBS: &[Attribute] = &[
    string("value", "The id of the manager's User.").case_exact(),
    attr("$ref", Type::Reference, "URI of the manager's User.").refs(&["User"]),
    string("displayName", "The manager's display name.").mutability(Mutability::ReadOnly),
];

pub(crate) static ENTERPRISE_USER_SCHEMA: Schema = Schema {
    id: ENTERPRISE_USER,
    name: "EnterpriseUser",
    description: "Enterprise User",
    attributes: &[
        string("employeeNumber", "Identifier assigned by the organisation.").summary(),
        string("costCenter", "Cost center."),
        string("organization", "Organisation."),
        string("division", "Division."),
        string("department", "Department.").summary(),
        complex("manager", "The user's manager.", MANAGER_SUBS)
            .role(Role::Reference)
            .summary(),
    ],
};

const META_SUBS: &[Attribute] = &[
    string("resourceType", "The resource's type: User or Group.")
        .case_exact()
        .mutability(Mutability::ReadOnly)
        .role(Role::ResourceType),
    attr("created", Type::DateTime, "When the resource was created.")
        .mutability(Mutability::ReadOnly)
        .role(Role::Created),
    attr(
        "lastModified",
        Type::DateTime,
        "When the resource last changed.",
    )
    .mutability(Mutability::ReadOnly)
    .role(Role::Modified),
    attr("location", Type::Reference, "The resource's URI.")
        .case_exact()
        .mutability(Mutability::ReadOnly)
        .role(Role::Location),
    string("version", "The resource's weak ETag.")
        .case_exact()
        .mutability(Mutability::ReadOnly)
        .role(Role::Version),
];

/// `schemas` (RFC 7643 §3): the schema URNs a resource uses.
pub(crate) static SCHEMAS: Attribute = attr(
    "schemas",
    Type::Reference,
    "The schema URNs the resource uses.",
)
.multi()
.case_exact()
.mutability(Mutability::ReadOnly)
.returned(Returned::Always)
.role(Role::Schemas);
/// `id` (RFC 7643 §3.1).
pub(crate) static ID: Attribute = string("id", "Assigned by the server; unique and stable.")
    .case_exact()
    .mutability(Mutability::ReadOnly)
    .returned(Returned::Always)
    .unique(Uniqueness::Server)
    .role(Role::Id);
/// `externalId` (RFC 7643 §3.1).
pub(crate) static EXTERNAL_ID: Attribute = string(
    "externalId",
    "The identifier the identity provider uses for the resource.",
)
.case_exact()
.role(Role::ExternalId)
.summary();
/// `meta` (RFC 7643 §3.1).
pub(crate) static META: Attribute = complex(
    "meta",
    "Resource metadata, maintained by the server.",
    META_SUBS,
)
.mutability(Mutability::ReadOnly)
.role(Role::Meta);

/// The attributes every resource has, whatever its schema.
pub(crate) static COMMON: [&Attribute; 4] = [&SCHEMAS, &ID, &EXTERNAL_ID, &META];

/// A common attribute by name, ignoring case.
pub(crate) fn common(name: &str) -> Option<&'static Attribute> {
    COMMON
        .iter()
        .copied()
        .find(|a| a.name.eq_ignore_ascii_case(name))
}

/// The two kinds of resource: what the store's rows are, and their endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    User,
    Group,
}

impl ResourceKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ResourceKind::User => "User",
            ResourceKind::Group => "Group",
        }
    }

    pub(crate) fn endpoint(self) -> &'static str {
        match self {
            ResourceKind::User => "Users",
            ResourceKind::Group => "Groups",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<ResourceKind> {
        [ResourceKind::User, ResourceKind::Group]
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name))
    }

    /// This kind's resource type in the built-in model (for tools and tests that have no
    /// provider; requests use their provider's model).
    pub fn builtin(self) -> &'static ResourceType {
        Model::builtin().get(self)
    }
}

/// What a provider does with an attribute of a schema it has not registered (an extension
/// object under an unknown URN, a PATCH path into one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Unknown {
    /// Refuse the request with `400`, naming the attribute and the command that registers it.
    #[default]
    Reject,
    /// Drop it, count it as a quirk, log it the first time.
    Ignore,
}

impl Unknown {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Unknown::Reject => "reject",
            Unknown::Ignore => "ignore",
        }
    }
}

impl std::str::FromStr for Unknown {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "reject" => Ok(Unknown::Reject),
            "ignore" => Ok(Unknown::Ignore),
            other => Err(format!(
                "unknown-attributes policy {other:?} must be reject or ignore"
            )),
        }
    }
}

/// One resource type as a model describes it: its kind, its core schema and the extension
/// schemas it accepts. What requests ask of it often (the unique name, the attribute kept as
/// membership rows) is found once, when the type is built.
#[derive(Debug, Clone)]
pub struct ResourceType {
    kind: ResourceKind,
    schema: &'static Schema,
    extensions: Vec<&'static Schema>,
    unique_name: Option<&'static Attribute>,
    linked: Option<&'static Attribute>,
    active: Option<&'static Attribute>,
    unknown: Unknown,
    /// Extension attributes kept in `value_index` (singular ones a provider marked indexed).
    indexed_extension: Vec<(&'static str, &'static Attribute)>,
    /// Searchers for the extension URNs in stored document text, in the order of
    /// `extensions`: building one costs more than searching a document with it.
    finders: Vec<memchr::memmem::Finder<'static>>,
}

impl ResourceType {
    fn new(kind: ResourceKind, schema: &'static Schema, extensions: Vec<&'static Schema>) -> Self {
        ResourceType {
            kind,
            schema,
            unique_name: schema
                .attributes
                .iter()
                .find(|a| a.role == Role::UniqueName),
            linked: schema.attributes.iter().find(|a| a.is_linked()),
            active: schema.attributes.iter().find(|a| a.role == Role::Active),
            unknown: Unknown::default(),
            indexed_extension: Vec::new(),
            finders: extensions
                .iter()
                .map(|e| memchr::memmem::Finder::new(e.id))
                .collect(),
            extensions,
        }
    }

    /// Each extension with a searcher for its URN (see `render`).
    pub(crate) fn extension_finders(
        &self,
    ) -> impl Iterator<Item = (&'static Schema, &memchr::memmem::Finder<'static>)> {
        self.extensions.iter().copied().zip(&self.finders)
    }

    pub(crate) fn kind(&self) -> ResourceKind {
        self.kind
    }

    /// What this provider does with attributes of schemas it has not registered.
    pub(crate) fn unknown(&self) -> Unknown {
        self.unknown
    }

    /// Extension attributes whose values are indexed, with their extension's URN.
    pub(crate) fn indexed_extension(
        &self,
    ) -> impl Iterator<Item = (&'static str, &'static Attribute)> + '_ {
        self.indexed_extension.iter().copied()
    }

    pub(crate) fn name(&self) -> &'static str {
        self.kind.name()
    }

    pub(crate) fn endpoint(&self) -> &'static str {
        self.kind.endpoint()
    }

    pub(crate) fn schema(&self) -> &'static Schema {
        self.schema
    }

    /// The attributes a resource's summary shows, in order: the core schema's, `externalId`,
    /// then each extension's, with the URN an extension's value is kept under.
    pub(crate) fn summary(&self) -> Vec<(Option<&'static str>, &'static Attribute)> {
        let core = self.schema.attributes.iter().filter(|a| a.summary);
        let mut out: Vec<_> = core.map(|a| (None, a)).collect();
        out.push((None, &EXTERNAL_ID));
        for e in &self.extensions {
            out.extend(
                e.attributes
                    .iter()
                    .filter(|a| a.summary)
                    .map(|a| (Some(e.id), a)),
            );
        }
        out
    }

    pub(crate) fn extensions(&self) -> &[&'static Schema] {
        &self.extensions
    }

    pub(crate) fn extension(&self, urn: &str) -> Option<&'static Schema> {
        self.extensions
            .iter()
            .copied()
            .find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// Finds an attribute by name: in the schema `uri` names, or with no URI in the core schema
    /// and then, when exactly one extension has it, in that extension (`manager` means the
    /// enterprise manager, as Microsoft Entra ID's older shapes assume). Returns the extension
    /// URN holding it, if any.
    pub(crate) fn locate(
        &self,
        uri: Option<&str>,
        name: &str,
    ) -> Option<(Option<&'static str>, &'static Attribute)> {
        match uri {
            Some(u) if u.eq_ignore_ascii_case(self.schema.id) => {
                self.schema.attribute(name).map(|a| (None, a))
            }
            Some(u) => {
                let ext = self.extension(u)?;
                ext.attribute(name).map(|a| (Some(ext.id), a))
            }
            None => self.schema.attribute(name).map(|a| (None, a)).or_else(|| {
                let mut found = self
                    .extensions
                    .iter()
                    .filter_map(|e| e.attribute(name).map(|a| (Some(e.id), a)));
                let first = found.next()?;
                found.next().is_none().then_some(first)
            }),
        }
    }

    /// The name of the attribute unique per provider (`Role::UniqueName`): userName or
    /// displayName.
    pub(crate) fn name_attribute(&self) -> &'static str {
        self.unique_name.map_or("", |a| a.name)
    }

    /// The attribute whose values come from membership rows (`Role::Relation` or
    /// `Role::Computed`): a Group's members, a User's groups.
    pub(crate) fn linked(&self) -> Option<&'static Attribute> {
        self.linked
    }

    /// The name of `linked`, or "" for a type without one.
    pub(crate) fn linked_name(&self) -> &'static str {
        self.linked.map_or("", |a| a.name)
    }

    /// Whether a stored or served document is of an active resource (`Role::Active`): only an
    /// explicit `false` deactivates.
    pub(crate) fn is_active(&self, doc: &serde_json::Map<String, Value>) -> bool {
        self.active
            .is_none_or(|a| doc.get(a.name) != Some(&Value::Bool(false)))
    }

    /// `is_active` of a document read borrowed (`scim::borrowed`); anything but an object
    /// with `active: false` is active.
    pub(crate) fn is_active_doc(&self, doc: &crate::scim::borrowed::Json<'_>) -> bool {
        self.active
            .is_none_or(|a| doc.get(a.name).and_then(|v| v.as_bool()) != Some(false))
    }

    /// The name of the attribute with `Role::Active`, if the type has one.
    pub(crate) fn active_name(&self) -> Option<&'static str> {
        self.active.map(|a| a.name)
    }

    /// The core attribute with `role` (the first, for roles several have).
    pub(crate) fn with_role(&self, role: Role) -> Option<&'static Attribute> {
        self.schema.attributes.iter().find(|a| a.role == role)
    }

    /// The multi-valued attributes of the core schema whose sub-attribute values are kept in
    /// `value_index`, with that sub-attribute.
    pub(crate) fn indexed(&self) -> impl Iterator<Item = (&'static Attribute, &'static Attribute)> {
        self.schema
            .attributes
            .iter()
            .filter_map(|a| a.indexed_sub().map(|s| (a, s)))
    }

    pub(crate) fn resource_type_json(&self) -> Value {
        let extensions: Vec<Value> = self
            .extensions
            .iter()
            .map(|s| json!({"schema": s.id, "required": false}))
            .collect();
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": self.name(),
            "name": self.name(),
            "endpoint": format!("/{}", self.endpoint()),
            "description": match self.kind {
                ResourceKind::User => "User Account",
                ResourceKind::Group => "Group",
            },
            "schema": self.schema.id,
            "schemaExtensions": extensions,
        })
    }
}

/// The schema model of one identity provider: its User and Group resource types. Every
/// provider starts from the built-in model (RFC 7643 User with the Enterprise User extension,
/// and Group); `with_extension` builds a model with one more extension schema, so a provider's
/// own extensions can be added at run time without touching anyone else's.
#[derive(Debug, Clone)]
pub struct Model {
    user: ResourceType,
    group: ResourceType,
    /// The provider's `model_version` this model was built from (0: the built-in model).
    version: i64,
}

/// One extension a provider registered, as the model needs it.
#[derive(Debug, Clone)]
pub(crate) struct Registered {
    pub(crate) kind: ResourceKind,
    pub(crate) schema: &'static Schema,
    /// Names of its singular attributes kept in `value_index`.
    pub(crate) indexed: Vec<&'static str>,
}

impl Model {
    /// The model every provider has until it registers extensions of its own.
    pub fn builtin() -> &'static Model {
        static BUILTIN: std::sync::LazyLock<Model> = std::sync::LazyLock::new(|| Model {
            user: ResourceType::new(
                ResourceKind::User,
                &USER_SCHEMA,
                vec![&ENTERPRISE_USER_SCHEMA],
            ),
            group: ResourceType::new(ResourceKind::Group, &GROUP_SCHEMA, Vec::new()),
            version: 0,
        });
        &BUILTIN
    }

    /// A provider's model: the built-in one with its registered extensions and its policy for
    /// unknown attributes, as of `version`.
    pub(crate) fn for_provider(version: i64, unknown: Unknown, extensions: &[Registered]) -> Model {
        let mut model = Model::builtin().clone();
        for e in extensions {
            model = model.with_extension(e.kind, e.schema);
            let t = model.get_mut(e.kind);
            for name in &e.indexed {
                if let Some(a) = e.schema.attribute(name) {
                    t.indexed_extension.push((e.schema.id, a));
                }
            }
        }
        model.user.unknown = unknown;
        model.group.unknown = unknown;
        model.version = version;
        model
    }

    pub(crate) fn version(&self) -> i64 {
        self.version
    }

    fn get_mut(&mut self, kind: ResourceKind) -> &mut ResourceType {
        match kind {
            ResourceKind::User => &mut self.user,
            ResourceKind::Group => &mut self.group,
        }
    }

    pub(crate) fn get(&self, kind: ResourceKind) -> &ResourceType {
        match kind {
            ResourceKind::User => &self.user,
            ResourceKind::Group => &self.group,
        }
    }

    /// This model with one more extension schema for `kind`.
    pub(crate) fn with_extension(&self, kind: ResourceKind, extension: &'static Schema) -> Model {
        let mut model = self.clone();
        let t = match kind {
            ResourceKind::User => &mut model.user,
            ResourceKind::Group => &mut model.group,
        };
        let indexed = std::mem::take(&mut t.indexed_extension);
        let unknown = t.unknown;
        *t = ResourceType::new(kind, t.schema, {
            let mut exts = t.extensions.clone();
            exts.push(extension);
            exts
        });
        t.indexed_extension = indexed;
        t.unknown = unknown;
        model
    }

    /// Every schema of the model, in the order `/Schemas` lists them: each resource type's
    /// core schema followed by its extensions.
    pub fn schemas(&self) -> impl Iterator<Item = &'static Schema> + '_ {
        [&self.user, &self.group]
            .into_iter()
            .flat_map(|t| std::iter::once(t.schema).chain(t.extensions.iter().copied()))
    }

    /// Whether `urn` (a schema URN, or a path or key starting with one) belongs to a schema of
    /// this model, ignoring case.
    pub(crate) fn knows(&self, urn: &str) -> bool {
        self.schemas().any(|s| {
            urn.get(..s.id.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(s.id))
                && matches!(urn.as_bytes().get(s.id.len()), None | Some(b':'))
        })
    }

    /// A schema of the model by its URN, ignoring case.
    pub(crate) fn schema(&self, id: &str) -> Option<&'static Schema> {
        self.schemas().find(|s| s.id.eq_ignore_ascii_case(id))
    }

    pub(crate) fn resource_types(&self) -> [&ResourceType; 2] {
        [&self.user, &self.group]
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_active_attribute_is_where_sql_reads_it() {
        let users = ResourceKind::User.builtin();
        let name = users.active_name().unwrap_or_default();
        assert_eq!(format!("$.{name}"), active_json_path!());
        let doc = |v: Value| v.as_object().cloned().unwrap_or_default();
        assert!(users.is_active(&doc(json!({}))));
        assert!(users.is_active(&doc(json!({ name: true }))));
        assert!(!users.is_active(&doc(json!({ name: false }))));
        assert!(
            ResourceKind::Group
                .builtin()
                .is_active(&doc(json!({ name: false })))
        );
    }

    use super::*;

    #[test]
    fn rfc_7643_user_attributes_are_all_described() {
        for name in [
            "userName",
            "name",
            "displayName",
            "nickName",
            "profileUrl",
            "title",
            "userType",
            "preferredLanguage",
            "locale",
            "timezone",
            "active",
            "password",
            "emails",
            "phoneNumbers",
            "ims",
            "photos",
            "addresses",
            "groups",
            "entitlements",
            "roles",
            "x509Certificates",
        ] {
            assert!(USER_SCHEMA.attribute(name).is_some(), "{name}");
        }
        assert_eq!(USER_SCHEMA.attribute("USERNAME").unwrap().name, "userName");
        let manager = ENTERPRISE_USER_SCHEMA.attribute("manager").unwrap();
        assert_eq!(manager.sub("VALUE").unwrap().name, "value");
    }

    #[test]
    fn schema_json_has_rfc_shape() {
        let v = USER_SCHEMA.to_json();
        assert_eq!(v["id"], USER);
        let user_name = &v["attributes"][0];
        assert_eq!(user_name["name"], "userName");
        assert_eq!(user_name["uniqueness"], "server");
        assert_eq!(user_name["required"], true);
        let emails = v["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "emails")
            .unwrap();
        assert_eq!(emails["multiValued"], true);
        assert_eq!(emails["subAttributes"][2]["canonicalValues"][0], "work");
    }
}
