//! Which local folder each job was first synced with (see [`crate::sync::folder`]).

use sqlx::Row;

use super::{Result, Store, failed, now};

impl Store {
    /// The id of the cluster of instances sharing the store.
    pub async fn cluster_id(&self) -> Result<String> {
        self.state
            .cluster_id()
            .await
            .map_err(failed("reading the cluster id"))
    }

    /// The id of the folder `job` was synced with, if recorded.
    pub async fn folder_id(&self, job: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT folder_id FROM sync_folders WHERE job = $1")
            .bind(job)
            .fetch_optional(self.pool())
            .await
            .map_err(failed("reading the job's folder id"))?;
        row.map(|row| row.try_get("folder_id"))
            .transpose()
            .map_err(failed("reading the job's folder id"))
    }

    /// Records `folder` as the folder `job` is synced with.
    pub async fn set_folder_id(&self, job: &str, folder: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO sync_folders (job, folder_id, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (job) DO UPDATE SET folder_id = excluded.folder_id,
                 created_at = excluded.created_at",
        )
        .bind(job)
        .bind(folder)
        .bind(now())
        .execute(self.pool())
        .await
        .map_err(failed("recording the job's folder id"))?;
        Ok(())
    }
}
