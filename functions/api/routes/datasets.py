"""Datasets for the UI and CLI: list them, suggest labels, presign a resumable upload, delete."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Query

from functions.api.deps import SettingsDep, StoreDep, TenantDep, TrackingDep
from functions.api.schemas import (
    ERROR_RESPONSES,
    MAX_TEXT_FIELD,
    SUCCESS,
    DatasetDeletedOut,
    DatasetRequest,
    Envelope,
    FiledDocumentOut,
    FileDocumentRequest,
    LabelFolderOut,
    NotTreatedDocument,
    PresignedUpload,
    RejectedFile,
    UploadPlanOut,
    UploadRequest,
)
from functions.core.datasets import (
    UploadFile,
    delete_dataset,
    file_document,
    label_folders,
    list_datasets,
    plan_upload,
)

router = APIRouter(prefix="/custom_classifier", tags=["datasets"], responses=ERROR_RESPONSES)


@router.get("/datasets", response_model=Envelope[list[str]])
def datasets(store: StoreDep, settings: SettingsDep, tenant: TenantDep) -> Envelope[list[str]]:
    """The datasets: top-level folders of the data bucket (of your folder, with a key)."""
    return Envelope(status=SUCCESS, data=list_datasets(store, settings, tenant))


@router.get("/datasets/labels", response_model=Envelope[list[LabelFolderOut]])
def dataset_labels(
    store: StoreDep,
    settings: SettingsDep,
    tenant: TenantDep,
    path: str = Query(max_length=MAX_TEXT_FIELD),
) -> Envelope[list[LabelFolderOut]]:
    """The label folders of a dataset with their usable document counts by format, and the
    documents that cannot be used (label suggestions)."""
    folders = label_folders(path, store, settings, tenant)
    return Envelope(
        status=SUCCESS,
        data=[
            LabelFolderOut(
                label=f.label, documents=f.documents, not_usable=f.not_usable,
                not_usable_documents=[NotTreatedDocument(**asdict(d))
                                      for d in f.not_usable_documents],
                formats=f.formats,
            )
            for f in folders
        ],
        number_documents_treated=sum(f.documents for f in folders),
        number_documents_non_treated=sum(f.not_usable for f in folders),
        list_id_not_treated=[d.key for f in folders for d in f.not_usable_documents],
    )  # fmt: skip


@router.post("/datasets/delete", response_model=Envelope[DatasetDeletedOut])
def dataset_delete(
    body: DatasetRequest,
    tracking: TrackingDep,
    store: StoreDep,
    settings: SettingsDep,
    tenant: TenantDep,
) -> Envelope[DatasetDeletedOut]:
    """Remove every object of a dataset (409 while a queued or running training run or batch
    job reads it, naming them)."""
    deleted = delete_dataset(body.path, tracking, store, settings, tenant)
    return Envelope(
        status=SUCCESS,
        data=DatasetDeletedOut(
            data_uri=deleted.location.uri,
            objects_removed=deleted.objects,
            batch_jobs_removed=deleted.batch_jobs,
        ),
    )


@router.post("/uploads", response_model=Envelope[UploadPlanOut])
def uploads(
    body: UploadRequest, store: StoreDep, settings: SettingsDep, tenant: TenantDep
) -> Envelope[UploadPlanOut]:
    """Presigned PUT URLs for `<label>/<file>` paths the dataset does not hold yet (same size
    and MD5 count as held: a repeated request resumes an interrupted upload)."""
    files = [UploadFile(f.path, f.size, f.md5.lower()) for f in body.files]
    plan = plan_upload(body.path, files, store, settings, tenant)
    return Envelope(
        status=SUCCESS,
        data=UploadPlanOut(
            data_uri=plan.location.uri,
            expires_in=settings.presign_seconds,
            uploads=[PresignedUpload(path=p, key=k, url=u) for p, k, u in plan.uploads],
            skipped=plan.skipped,
            rejected=[RejectedFile(path=p, reason=r) for p, r in plan.rejected],
        ),
        number_documents_non_treated=len(plan.rejected),
        list_id_not_treated=[p for p, _ in plan.rejected],
    )


@router.post("/datasets/file", response_model=Envelope[FiledDocumentOut])
def dataset_file(
    body: FileDocumentRequest, store: StoreDep, settings: SettingsDep, tenant: TenantDep
) -> Envelope[FiledDocumentOut]:
    """Label one document (e.g. a suggestion): copied server side into the dataset's label
    folder, which a retrain then reads."""
    key = file_document(body.document, body.path, body.label, store, settings, tenant)
    return Envelope(status=SUCCESS, data=FiledDocumentOut(key=key))
