package org.mediator.sdk;

import java.time.Duration;
import java.util.concurrent.TimeoutException;
import org.mediator.sdk.Models.JobModel;

/**
 * A download running on the node: {@link #waitFor} its end, or {@link #pause()}, {@link #resume()},
 * {@link #cancel()} it. {@link #job()} is the job as last seen. Not thread-safe, except that a
 * {@link CancelToken} given to {@code waitFor} may be cancelled from any thread.
 */
public final class DownloadHandle {
    private final Mediator mediator;
    private volatile JobModel job;

    DownloadHandle(Mediator mediator, JobModel job) {
        this.mediator = mediator;
        this.job = job;
    }

    /** @return the job's id */
    public String id() {
        return job.id();
    }

    /** @return the job as last seen (see {@link #refresh}) */
    public JobModel job() {
        return job;
    }

    /**
     * The job now, or once it changed, waiting up to {@code wait} (at most 30 s) on the node.
     *
     * @param wait how long the node may wait for a change (zero: answer at once)
     * @return the job
     */
    public JobModel refresh(Duration wait) {
        double seconds = Math.min(wait.toMillis() / 1000.0, 30.0);
        job = mediator.getJob(id(), job.changes(), seconds);
        return job;
    }

    /**
     * Block until the job ends; calls {@code progress} on each change. Cancelling {@code cancel}
     * cancels the job (what finished stays; the next run resumes).
     *
     * @param progress told of each change, or null
     * @param cancel a token another thread may cancel, or null
     * @param timeout how long to wait at most, or null: as long as it runs
     * @return the finished job: state done, failed or cancelled; its report lists what was fetched and every failure
     * @throws TimeoutException when the job still runs after {@code timeout}
     */
    public JobModel waitFor(ProgressListener progress, CancelToken cancel, Duration timeout) throws TimeoutException {
        long deadline = timeout == null ? Long.MAX_VALUE : System.nanoTime() + timeout.toNanos();
        boolean cancelled = false;
        while (!job.finished()) {
            if (cancel != null && cancel.isCancelled() && !cancelled) {
                cancel();
                cancelled = true;
                continue;
            }
            if (System.nanoTime() > deadline) {
                throw new TimeoutException("download " + id() + " still runs after " + timeout);
            }
            long left = timeout == null ? Long.MAX_VALUE : (deadline - System.nanoTime()) / 1_000_000;
            long step = Math.max(1, Math.min(cancel != null ? 500 : 10_000, left)); // never past the timeout
            if (progress == null) { // nobody to tell of progress: the node answers at the end only
                job = mediator.getJob(id(), job.changes(), step / 1000.0, true);
                continue;
            }
            refresh(Duration.ofMillis(step));
            if (job.progress() != null) {
                progress.onProgress(job.progress());
            }
        }
        return job;
    }

    /**
     * Block until the job ends, without progress or a timeout.
     *
     * @return the finished job
     */
    public JobModel waitFor() {
        try {
            return waitFor(null, null, null);
        } catch (TimeoutException e) {
            throw new IllegalStateException(e); // no timeout was given
        }
    }

    /** @return the job, paused (what is in flight finishes) */
    public JobModel pause() {
        job = mediator.controlJob(id(), "pause");
        return job;
    }

    /** @return the job, running again */
    public JobModel resume() {
        job = mediator.controlJob(id(), "resume");
        return job;
    }

    /** @return the job, cancelled or cancelling (what finished stays; the next run resumes) */
    public JobModel cancel() {
        job = mediator.controlJob(id(), "cancel");
        return job;
    }
}
