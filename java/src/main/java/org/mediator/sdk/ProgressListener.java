package org.mediator.sdk;

/**
 * Told how far a download got, each time the node reports a change (bytes, items, rate, ETA and a
 * one-line summary in {@link Models.ProgressModel#line()}). Called on the thread that waits for the
 * download; keep it short.
 */
@FunctionalInterface
public interface ProgressListener {
    /**
     * @param progress the download's progress now
     */
    void onProgress(Models.ProgressModel progress);
}
