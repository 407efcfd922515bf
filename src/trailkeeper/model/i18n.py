"""Message catalogue: English display names for the i18n keys Atlassian products emit.

An event may name its category or action by key alone; the display name is then taken from
here. Names are stored as recorded (like Atlassian, which stores the site-language name), so
changing this catalogue never rewrites history.
"""

from __future__ import annotations

_BB_USER = "bitbucket.service.user.audit.action."
_BB_PROJECT = "bitbucket.service.project.audit.action."
_BB_REPO = "bitbucket.service.repository.audit.action."
_BB_CATEGORY = "bitbucket.service.audit.category."

MESSAGES: dict[str, str] = {
    # The audit framework itself.
    "atlassian.audit.event.category.audit": "Auditing",
    "atlassian.audit.event.action.audit.search": "Audit Log search performed",
    "atlassian.audit.event.action.audit.exported": "Audit Log exported",
    "atlassian.audit.event.action.audit.config.updated": "Audit Log configuration updated",
    "atlassian.audit.event.change.coverage.level": "Coverage level",
    "atlassian.audit.event.change.retention": "Retention period",
    "atlassian.audit.event.change.retention.file": "Retention file count",
    "atlassian.audit.event.change.deny.list": "Deny list",
    "atlassian.audit.event.attribute.forwarder": "Forwarder",
    # Bitbucket categories.
    _BB_CATEGORY + "apps": "Apps",
    _BB_CATEGORY + "authentication": "Authentication",
    _BB_CATEGORY + "globaladministration": "Global administration",
    _BB_CATEGORY + "permissions": "Permissions",
    _BB_CATEGORY + "projects": "Projects",
    _BB_CATEGORY + "pullrequests": "Pull requests",
    _BB_CATEGORY + "repositories": "Repositories",
    _BB_CATEGORY + "search": "Search",
    _BB_CATEGORY + "security": "Security",
    _BB_CATEGORY + "system": "System",
    _BB_CATEGORY + "usersandgroups": "Users and groups",
    # Bitbucket actions seen in real exports.
    _BB_USER + "usercreated": "User created",
    _BB_USER + "userdeleted": "User deleted",
    _BB_USER + "userrenamed": "Username changed",
    _BB_USER + "usercredentialupdated": "User password changed",
    _BB_USER + "groupcreated": "User group created",
    _BB_USER + "groupdeleted": "User group deleted",
    _BB_USER + "groupmembershipscreated.user": "User added to user group",
    _BB_USER + "groupmembershipdeleted": "User deleted from user group",
    _BB_USER + "authenticationsuccess": "User logged in",
    _BB_USER + "authenticationfailure": "User login failed",
    _BB_USER + "projectpermissiongranted": "Project permission granted",
    _BB_USER + "repositorypermissiongranted": "Repository permission granted",
    _BB_USER + "repositorypermissiongrantrequested": "Repository permission grant requested",
    _BB_USER + "repositorypermissionrevoked": "Repository permission revoked",
    _BB_USER + "repositorypermissionrevocationrequested": (
        "Repository permission revocation requested"
    ),
    _BB_PROJECT + "projectcreated": "Project created",
    _BB_PROJECT + "projectdeletionrequested": "Project deletion requested",
    _BB_PROJECT + "projectdeleted": "Project deleted",
    _BB_PROJECT + "projectmodificationrequested": "Project settings change requested",
    _BB_PROJECT + "projectmodified": "Project settings changed",
    _BB_REPO + "repositorymodificationrequested": "Repository change requested",
    _BB_REPO + "repositorymodified": "Repository modified",
    _BB_REPO + "repositorydeleted": "Repository deleted",
    _BB_REPO + "repositoryaccessed": "Repository accessed by user",
    "bitbucket.web.audit.action.logoutsuccess": "User logged out",
    "bitbucket.ssh.audit.action.sshkeycreated": "SSH access key created for personal key",
    "bitbucket.ssh.audit.action.sshkeydeleted": "SSH access key deleted for personal key",
    "bitbucket.ssh.audit.action.sshaccesskeygranted.repository": "SSH access key granted",
    "bitbucket.ssh.audit.action.sshaccesskeyrevoked.repository": "SSH access key revoked",
    "bitbucket.plugins.gpg.audit.action.gpgevent.created": "GPG key added",
    "bitbucket.plugins.gpg.audit.action.gpgevent.deleted": "GPG key deleted",
    "bitbucket.branch.audit.action.projectbranchmodelconfigurationcreated": (
        "Project branch model created"
    ),
    "bitbucket.access.tokens.audit.action.accesstokencreated.personal": (
        "Personal access token created"
    ),
    "bitbucket.access.tokens.audit.action.accesstokendeleted.personal": (
        "Personal access token deleted"
    ),
    "bitbucket.access.tokens.audit.action.accesstokenmodified.personal": (
        "Personal access token changed"
    ),
    # Jira.
    "jira.auditing.category.groupmanagement": "group management",
    "jira.auditing.category.usermanagement": "user management",
    "jira.auditing.group.created": "Group created",
    "jira.auditing.user.renamed": "User renamed",
}


def display_name(key: str | None) -> str | None:
    """The English name for an i18n key, or None when the catalogue does not know it."""
    if key is None:
        return None
    return MESSAGES.get(key)
