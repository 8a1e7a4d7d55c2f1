package org.mediator.sdk;

import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Cancels a download from another thread (the Python SDK's {@code threading.Event}): pass it in
 * {@link Mediator.DownloadOptions#cancel(CancelToken)}, call {@link #cancel()} from anywhere; the
 * waiting {@code download} cancels the job on the node and returns it (state {@code cancelled}).
 * What finished stays; the next download of the same folder resumes.
 */
public final class CancelToken {
    private final AtomicBoolean cancelled = new AtomicBoolean();

    /** Ask for the download to stop. Safe from any thread, any number of times. */
    public void cancel() {
        cancelled.set(true);
    }

    /** @return true once {@link #cancel()} was called */
    public boolean isCancelled() {
        return cancelled.get();
    }
}
