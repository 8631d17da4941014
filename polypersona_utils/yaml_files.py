"""YAML as this study reads it (profiles, question banks, survey files): the safe loader, except that a key given
twice in one mapping is an error naming both lines (plain YAML silently keeps the last)."""
from __future__ import annotations

import yaml


class UniqueKeyLoader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {seen[key] + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def load_yaml(text: str):
    """The document in `text`; yaml.YAMLError (with the line) on bad YAML or a repeated key."""
    return yaml.load(text, Loader=UniqueKeyLoader)
