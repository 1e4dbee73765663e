"""Publication of approved variants to the Hugging Face Hub, with RedHatAI-style model cards."""

from dagster_project.hub.model_card import CardInfo, card_metadata, parse_card_metadata, render_model_card
from dagster_project.hub.publish import (
    HubPermissionError,
    HubPublication,
    MissingTokenError,
    PublicationError,
    hub_uri,
    publish_folder,
)

__all__ = [
    "CardInfo",
    "HubPermissionError",
    "HubPublication",
    "MissingTokenError",
    "PublicationError",
    "card_metadata",
    "hub_uri",
    "parse_card_metadata",
    "publish_folder",
    "render_model_card",
]
