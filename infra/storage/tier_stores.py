"""The platform's tiers, built from settings: hot is the archive store it is given; warm and
cold are an S3 bucket (the platform's endpoint or their own) or an Azure container."""

from __future__ import annotations

from infra.settings import Settings, TierSettings
from infra.storage.archive import ArchiveStore, make_minio
from infra.storage.azure_blob import AzureBlobStore
from infra.storage.tiers import Tiers, TierStore
from schemas.tiers import TIER_NAMES


def tier_store(name: str, tier: TierSettings, settings: Settings) -> TierStore:
    if tier.backend == "azure":
        if tier.azure_connection_string is None:
            raise ValueError(f"tier {name} is on Azure but has no azure_connection_string")
        return AzureBlobStore(tier.azure_connection_string.get_secret_value(), tier.bucket, name)
    client = make_minio(tier.s3 or settings.s3)
    return ArchiveStore(client, tier.bucket, tier=name, storage_class=tier.storage_class)


def make_tiers(settings: Settings, hot: ArchiveStore) -> Tiers:
    configured = {"warm": settings.tiers.warm, "cold": settings.tiers.cold}
    return Tiers(hot, [tier_store(n, configured[n], settings) for n in TIER_NAMES[1:]])
