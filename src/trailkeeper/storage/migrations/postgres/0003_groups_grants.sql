-- Groups of users, and grants of a role or of a resource to a user or a group.
CREATE TABLE groups (
    name text COLLATE "C" PRIMARY KEY
);

CREATE TABLE group_members (
    group_name text COLLATE "C" NOT NULL REFERENCES groups (name) ON DELETE CASCADE,
    user_name  text COLLATE "C" NOT NULL,
    PRIMARY KEY (group_name, user_name)
);
CREATE INDEX group_members_by_user ON group_members (user_name, group_name);

-- grantee_kind 'user' or 'group'; target is a role ('sysadmin', 'admin', 'auditor') when
-- target_type is '' or an administered object (target_type 'PROJECT', target_id '12').
CREATE TABLE grants (
    grantee_kind text COLLATE "C" NOT NULL,
    grantee      text COLLATE "C" NOT NULL,
    target_type  text COLLATE "C" NOT NULL,
    target_id    text COLLATE "C" NOT NULL,
    PRIMARY KEY (grantee_kind, grantee, target_type, target_id)
);
