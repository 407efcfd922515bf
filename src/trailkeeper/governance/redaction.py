"""Redaction: long values and the values of sensitive keys become ``sha256:<hex>``.

Applies to changed values (``from``/``to``, by the change's key), extra attribute values (by
the attribute's name) and affected-object names (by the object's type). The digest is of the
full UTF-8 value, so two events holding the same secret can still be correlated and a
known value can be confirmed, but the value itself is never stored.

A key is sensitive when one of its words matches a pattern (``apiToken`` -> ``api``,
``token``), unless its last word only describes the secret (``Token name``, ``Key ID``):
those carry metadata, not the secret.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Sequence
from dataclasses import replace

from trailkeeper.model.event import AuditAttribute, AuditEvent, AuditResource, ChangedValue

PREFIX = "sha256:"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
# A key ending in one of these names something about a secret, not the secret itself.
_DESCRIPTORS = frozenset({
    "name", "names", "id", "ids", "type", "types", "count", "scope", "scopes", "expiry",
    "expires", "expiration", "created", "label", "prefix", "fingerprint", "length", "policy",
    "enabled", "algorithm", "usage", "owner", "description", "rotated", "age",
})
_CACHE_LIMIT = 10_000


def digest(value: str) -> str:
    """``sha256:<hex>`` of the whole value."""
    return PREFIX + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def key_words(key: str) -> list[str]:
    """``apiToken`` -> ``["api", "token"]``; ``PRIVATE_KEY`` -> ``["private", "key"]``."""
    return [word.lower() for word in _WORDS.findall(key)]


class Redactor:
    """Replaces over-long and sensitive values; cheap when there is nothing to replace."""

    def __init__(self, max_length: int, sensitive_keys: Sequence[str], *,
                 keep_changes: bool = True) -> None:
        self.max_length = max_length
        self.patterns = tuple(p.lower() for p in sensitive_keys)
        self.keep_changes = keep_changes
        self._sensitive: dict[str | None, bool] = {None: False}

    def is_sensitive(self, key: str | None) -> bool:
        """Whether values under ``key`` are secrets (memoised: keys repeat endlessly)."""
        known = self._sensitive.get(key)
        if known is not None:
            return known
        assert key is not None
        words = key_words(key)
        whole = key.strip().lower()
        found = bool(words) and words[-1] not in _DESCRIPTORS and any(
            fnmatch.fnmatchcase(candidate, pattern)
            for pattern in self.patterns for candidate in (*words, whole))
        if len(self._sensitive) > _CACHE_LIMIT:
            self._sensitive = {None: False}
        self._sensitive[key] = found
        return found

    def _value(self, value: str | None, sensitive: bool) -> str | None:
        if value is None or _DIGEST.fullmatch(value):
            return value  # already a digest (e.g. re-imported): keep it stable
        if sensitive or len(value) > self.max_length:
            return digest(value)
        return value

    def redact(self, event: AuditEvent, *, keep_changes: bool | None = None) -> AuditEvent:
        """The event with every value that must not be stored replaced (itself if none).

        ``keep_changes`` overrides the policy's choice to keep changed values or not.
        """
        # Most events have no changes or attributes: skip the loops' set-up for them.
        changes = attributes = objects = None
        if event.changed_values:
            if self.keep_changes if keep_changes is None else keep_changes:
                changes = self._changes(event.changed_values)
            else:  # the BASIC policy: who did what to which object, not what changed
                changes = ()
        if event.extra_attributes:
            attributes = self._attributes(event.extra_attributes)
        if event.affected_objects:
            objects = self._objects(event.affected_objects)
        if changes is None and attributes is None and objects is None:
            return event
        return replace(
            event,
            changed_values=event.changed_values if changes is None else changes,
            extra_attributes=event.extra_attributes if attributes is None else attributes,
            affected_objects=event.affected_objects if objects is None else objects,
        )

    def _changes(self, changes: Sequence[ChangedValue]) -> Sequence[ChangedValue] | None:
        limit = self.max_length
        result: list[ChangedValue] | None = None
        for index, change in enumerate(changes):
            old, new = change.from_value, change.to_value
            sensitive = self.is_sensitive(change.key) or self.is_sensitive(change.i18n_key)
            if sensitive or (old is not None and len(old) > limit) or (
                    new is not None and len(new) > limit):
                if result is None:
                    result = list(changes[:index])
                result.append(ChangedValue(change.key, self._value(old, sensitive),
                                           self._value(new, sensitive), change.i18n_key))
            elif result is not None:
                result.append(change)
        return result

    def _attributes(self, attributes: Sequence[AuditAttribute]
                    ) -> Sequence[AuditAttribute] | None:
        limit = self.max_length
        result: list[AuditAttribute] | None = None
        for index, attribute in enumerate(attributes):
            sensitive = self.is_sensitive(attribute.name) or self.is_sensitive(
                attribute.name_i18n_key)
            if sensitive or len(attribute.value) > limit:
                if result is None:
                    result = list(attributes[:index])
                value = self._value(attribute.value, sensitive) if attribute.value else ""
                result.append(AuditAttribute(attribute.name, value or "",
                                             attribute.name_i18n_key))
            elif result is not None:
                result.append(attribute)
        return result

    def _objects(self, objects: Sequence[AuditResource]) -> Sequence[AuditResource] | None:
        limit = self.max_length
        result: list[AuditResource] | None = None
        for index, obj in enumerate(objects):
            sensitive = self.is_sensitive(obj.type)
            if sensitive or len(obj.name) > limit:
                if result is None:
                    result = list(objects[:index])
                result.append(AuditResource(obj.type, self._value(obj.name, sensitive) or "",
                                            obj.id, obj.uri))
            elif result is not None:
                result.append(obj)
        return result
