-- Groups of users, and grants of a role or of a resource to a user or a group.
CREATE TABLE groups (
    name TEXT PRIMARY KEY
) WITHOUT ROWID;

CREATE TABLE group_members (
    group_name TEXT NOT NULL REFERENCES groups (name) ON DELETE CASCADE,
    user_name  TEXT NOT NULL,
    PRIMARY KEY (group_name, user_name)
) WITHOUT ROWID;
CREATE INDEX group_members_by_user ON group_members (user_name, group_name);

-- grantee_kind 'user' or 'group'; target is a role ('sysadmin', 'admin', 'auditor') when
-- target_type is '' or an administered object (target_type 'PROJECT', target_id '12').
CREATE TABLE grants (
    grantee_kind TEXT NOT NULL,
    grantee      TEXT NOT NULL,
    target_type  TEXT NOT NULL,
    target_id    TEXT NOT NULL,
    PRIMARY KEY (grantee_kind, grantee, target_type, target_id)
) WITHOUT ROWID;
