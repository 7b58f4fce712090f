"""The worker process: takes queued jobs from SQLite one at a time and trains them (`loop`),
reporting through a `sink.JobSink`, writing the `results` file and the job's `integrations`;
`process.WorkerProcess` is the API process's handle on it. Imports `store`, `models`,
`training` and `settings` of `ftutils.local`, never `api`.
"""
