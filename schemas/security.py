"""Users and API keys as the platform stores them, and as its admin API shows them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

# A user name: letters, digits and . _ @ - (an e-mail address works); no spaces or colons,
# which mark external (`oidc:`) and service (`service:`) identities.
USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"


class StudyScope(BaseModel):
    """Which studies a role binding reaches: those of these institutions (InstitutionName,
    compared case-insensitively) or carrying one of these access labels. Both empty: none."""

    institutions: list[str] = Field(default_factory=list, max_length=100)
    labels: list[str] = Field(default_factory=list, max_length=100)


class RoleBinding(BaseModel):
    """A role granted only for some studies: what the role may do with studies (read them
    through QIDO, WADO, C-FIND, C-GET, C-MOVE) it may do with the studies in `scope` only."""

    role: str
    scope: StudyScope


class User(BaseModel):
    """A local user: the argon2id hash of the password, never the password."""

    username: str = Field(pattern=USERNAME_PATTERN)
    password_hash: str
    # Roles over every study.
    roles: list[str] = Field(default_factory=list)
    # Roles over some studies (a radiologist of one hospital of a group).
    bindings: list[RoleBinding] = Field(default_factory=list)
    display_name: str = ""
    disabled: bool = False


class ApiKey(BaseModel):
    """An API key: the SHA-256 of its secret, the roles it carries, until when."""

    key_id: str
    name: str
    owner: str  # the user who created it
    secret_sha256: str
    roles: list[str] = Field(default_factory=list)
    expires_at: datetime | None = None
    revoked: bool = False


class StudyRuleModel(BaseModel):
    """One rule of a caller's study scope, as our processes pass it to each other."""

    institutions: list[str] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list)
    deidentified: bool = False


class DimseIdentity(BaseModel):
    """A DIMSE user identity (PS3.7 D.3.3.7) the API verified: who, what they may do, and
    which studies they may read (None: every study)."""

    name: str
    permissions: list[str]
    scope: list[StudyRuleModel] | None = None
