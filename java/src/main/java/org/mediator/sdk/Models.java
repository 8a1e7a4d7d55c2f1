package org.mediator.sdk;

import com.google.gson.annotations.SerializedName;
import java.util.List;
import java.util.Map;

/**
 * The local API's answers as typed records (the Python SDK's {@code mediator_desktop.api.models}).
 *
 * <p>Components are the JSON fields in camelCase ({@code bytes_done} is {@code bytesDone()}). Fields a
 * newer node adds are ignored, and a field an older node leaves out reads as null (or 0 / false for
 * primitives), so the SDK and the node can be upgraded separately. Nullable numbers are boxed.
 */
public final class Models {
    private Models() {
    }

    // -- the node and its cluster ----------------------------------------------------------------

    /** This node: version, the user's key id and name, folders, cluster address. */
    public record NodeInfo(String version, String keyId, String displayName, String dataDir, String downloadDir,
            String raftAddress) {
    }

    /** A member of the cluster. */
    public record MemberModel(String address, boolean connected, boolean isSelf, boolean isLeader) {
    }

    /** The cluster: its members, their health and the leader ({@code leader} null: none now). */
    public record ClusterModel(String selfAddress, String leader, boolean hasQuorum, long term, long commitIndex,
            List<MemberModel> members) {
    }

    /** A machine seen on the network (member, not member, other cluster). */
    public record PeerModel(String nodeId, String name, String raftAddress, String version, int protocol,
            String status) {
    }

    /** A user of the cluster: the key id sets name owners and editors by. */
    public record UserModel(String keyId, String displayName) {
    }

    // -- archives ----------------------------------------------------------------------------------

    /** An archive this node browses, with its levels and the metadata it filters by. */
    public record SourceModel(String id, String title, List<String> levels, List<String> filterable, String kind,
            Map<String, Object> options, boolean indexes) {
    }

    /** An option a kind of archive takes ({@code defaultValue}: text, a number, a boolean or null). */
    public record SourceOptionModel(String name, String title, String help, boolean required, String kind,
            @SerializedName("default") Object defaultValue) {
    }

    /** A kind of archive that can be added, with the options it takes; {@code secret} null: none. */
    public record SourceKindModel(String name, String title, String description, List<SourceOptionModel> options,
            String secret, String secretHelp) {
    }

    /** What an archive answered a check: {@code "reachable: 3 collections"}. */
    public record CheckModel(String source, String message) {
    }

    /** What indexing a folder archive again read. */
    public record ScanReportModel(String source, int read, int unchanged, int removed, int skipped,
            List<String> skippedExamples, String summary) {
    }

    /** A child in an archive: a collection, patient, study, series... ({@code leaves}, {@code size}: null when unknown). */
    public record ItemModel(String key, String level, String label, Integer leaves, Long size,
            Map<String, String> details) {
    }

    /** A page of children. */
    public record PageModel(List<ItemModel> items, int offset, int total, boolean more) {
    }

    // -- replica sets --------------------------------------------------------------------------------

    /** A pointer as the node answers it (see {@link Pointer}). */
    public record PointerModel(String source, List<String> path, Map<String, List<String>> filters) {
        /** @return it as a {@link Pointer} (its text is {@code pointer().toString()}) */
        public Pointer pointer() {
            return new Pointer(source, path, filters);
        }
    }

    /** A rule of a selection: a pointer, included or excluded. */
    public record RuleModel(boolean include, PointerModel pointer) {
    }

    /** A version of a set: its parent, author, message and selection ({@code time}: seconds since the epoch). */
    public record VersionModel(int number, Integer parent, String author, double time, String message,
            String manifestId, List<RuleModel> rules) {
    }

    /** Where a duplicated set came from. */
    public record ForkModel(String setId, Integer version) {
    }

    /**
     * A replica set as you see it. {@code head} is null before the first version; {@code warnings} is
     * only in the answer to a create; {@code update} is the summary of an archive update you have not
     * declined, or null.
     */
    public record SetModel(String id, String name, String description, String owner, String ownerName,
            List<String> editors, String visibility, ForkModel forkedFrom, boolean following, Integer head,
            List<Integer> published, Integer leaves, Long size, List<String> warnings, String update) {
    }

    /** A new version ({@code version} null: nothing changed, nothing committed) and the set after it. */
    public record UpdateResult(Integer version, SetModel set, List<String> warnings) {
    }

    /** A leaf of a version (a series, a file), with its size and fingerprint. */
    public record LeafModel(String key, String source, List<String> path, Long size, String fingerprint) {
    }

    /** A page of leaves. */
    public record LeavesModel(String manifestId, int total, int offset, List<LeafModel> leaves) {
    }

    /**
     * What changed between two versions; {@code summary} reads {@code +5 series (2.1 GB) in 3 patients, -1 series}.
     * The leaves are pointer texts ({@code source/key/...}), up to the limit asked.
     */
    public record DiffModel(String summary, String selectionSummary, int added, int removed, int changed,
            List<String> addedLeaves, List<String> removedLeaves, List<String> changedLeaves) {
    }

    // -- archive updates ---------------------------------------------------------------------------

    /** An archive update of a version: what its selection selects in the archives now, where it changed. */
    public record DriftModel(int version, String manifestId, String summary, String state, List<String> notes,
            int added, int revised, int removed, double checked, String by, String byName) {
    }

    /** The last update check of a set ({@code error} empty: it worked). */
    public record LastCheckModel(int version, double time, String by, String byName, String error) {
    }

    /** A set's archive update as you see it ({@code drift} null: the head is what the archives held). */
    public record TrackModel(String setId, DriftModel drift, boolean declined, LastCheckModel lastCheck,
            String line) {
    }

    /** What checking one set for archive updates found ({@code isNew}: this check found it). */
    public record UpdateCheckModel(String setId, String name, Integer version, @SerializedName("new") boolean isNew,
            String error, DriftModel drift, String line) {
    }

    /** A set you follow or own whose archives changed, with the update you have not declined. */
    public record SetUpdateModel(SetModel set, DriftModel drift) {
    }

    // -- downloads -------------------------------------------------------------------------------

    /** How far a download got ({@code eta} in seconds, null when unknown); {@code line} is one line for people. */
    public record ProgressModel(long bytesDone, long bytesTotal, int itemsDone, int itemsTotal, int failed,
            double rate, Double eta, String line) {
    }

    /** A leaf that did not arrive, and why ({@code key}: pass it in {@code only} to retry). */
    public record FailureModel(String key, String source, List<String> path, String reason) {
    }

    /** What a download did; leaves are named as pointer texts. */
    public record ReportModel(String destination, String manifestId, List<String> fetched, int unchanged,
            List<String> removed, List<String> pruned, List<FailureModel> failed, Map<String, String> unreachable,
            int pending, long bytes, double seconds, boolean cancelled, List<String> refetched,
            List<String> sizeOnly, int verified, int unverifiable, boolean ok) {
    }

    /** A leaf of a published version whose archive data changed since. */
    public record LeafChangeModel(String sourceId, List<String> path, String change, Map<String, Object> pinned,
            Map<String, Object> now, Boolean fetched, String reason, String line) {
    }

    /** A published version against its archives now, after a download of it. */
    public record ReproductionModel(String setId, int version, int leaves, boolean identical, String summary,
            List<LeafChangeModel> changes, int added, List<String> states, List<String> notes, String error) {
    }

    /**
     * A download job: {@code state} is running, paused, done, failed or cancelled; {@code changes} counts
     * its changes (for long polls); {@code report} is there once it ended.
     */
    public record JobModel(String id, String setId, String setName, int version, String destination, String state,
            long changes, ProgressModel progress, ReportModel report, String summary, String error, String errorType,
            ReproductionModel reproduction) {
        /** @return true when the job ended (done, failed or cancelled) */
        public boolean finished() {
            return "done".equals(state) || "failed".equals(state) || "cancelled".equals(state);
        }
    }

    // -- clinical tables and cohorts -----------------------------------------------------------------

    /** A column of a clinical table: {@code kind} text, number or date, and what its values look like. */
    public record ColumnModel(String name, String kind, int blanks, int distinct, String low, String high) {
    }

    /** What adding a table file would read; nothing is stored. */
    public record TablePreviewModel(String filename, int rows, List<ColumnModel> columns, String keyGuess,
            List<List<String>> head, List<String> problems) {
    }

    /** A version of a clinical table in the cluster's store. */
    public record TableVersionModel(String name, int number, String tableId, String keyColumn, List<String> columns,
            int rows, String filename, String author, String authorName, double time) {
    }

    /** A clinical table: its latest version and every version, oldest first. */
    public record TableModel(TableVersionModel table, List<TableVersionModel> history) {
    }

    /** A value of a column and its number of rows. */
    public record ValueCountModel(String value, int count) {
    }

    /** The patients (keys) of a table whose rows meet conditions. */
    public record PatientsModel(List<String> patients, int count) {
    }

    /** Rows of a clinical table, as text. */
    public record RowsModel(List<String> columns, List<List<String>> rows) {
    }

    /** What a cohort finds in one archive. */
    public record JoinTargetModel(String target, int patients, int found, List<String> missing) {
    }

    /** A cohort join, previewed: the pointer a set holds for it, and what each archive holds. */
    public record JoinPreviewModel(String pointer, List<String> patients, List<JoinTargetModel> targets) {
    }

    // -- matching data in other archives -------------------------------------------------------------

    /** The metadata filter that selects one kind of data ({@code Modality=CT}). */
    public record KindFilterModel(String name, String value) {
    }

    /** One kind of data an archive holds for some patients ({@code filter} null: all it holds). */
    public record DataKindModel(String label, String category, KindFilterModel filter, List<String> patients,
            int leaves, Long size) {
    }

    /** What one archive holds for a match's patients ({@code error}: why it could not be searched, or null). */
    public record ArchiveMatchModel(String source, String target, String title, List<String> found,
            List<String> missing, String error, List<DataKindModel> kinds) {
    }

    /** A cohort's patients and what each other archive holds of them. */
    public record MatchModel(List<String> origin, List<String> patients, List<ArchiveMatchModel> archives) {
        /**
         * @param source an archive searched
         * @return its answer
         * @throws java.util.NoSuchElementException for an archive that was not searched
         */
        public ArchiveMatchModel archive(String source) {
            return archives.stream().filter(a -> a.source().equals(source)).findFirst()
                    .orElseThrow(() -> new java.util.NoSuchElementException(source));
        }
    }

    /** The rules that hold a match in a set. */
    public record MatchCohortModel(List<String> pointers, List<String> patients, int count) {
    }

    // -- manifest files ------------------------------------------------------------------------------

    /** A set made of a manifest file; {@code missing} are the items no archive here holds. */
    public record ImportModel(String setId, int version, int count, List<String> missing, SetModel set) {
    }

    // -- settings ------------------------------------------------------------------------------------

    /** Every setting of the node. */
    public record SettingsValues(String dataDir, String downloadDir, String downloadLayout, String displayName,
            String raftAddress, List<String> peers, List<Map<String, Object>> sources, boolean discovery,
            int updateCheckMinutes, String doiService, String doiUrl, String doiRepository, String doiPrefix,
            String publisher) {
    }

    /** A setting's title and description; {@code live}: a change applies at once. */
    public record SettingFieldModel(String name, String title, String description, boolean live) {
    }

    /** The node's settings and their fields. */
    public record SettingsModel(SettingsValues values, List<SettingFieldModel> fields) {
    }

    /** What a settings change did: {@code restart} lists those that apply when the node starts next. */
    public record SettingsChangeModel(SettingsValues settings, List<String> changed, List<String> restart) {
    }

    // -- publishing with a DOI -----------------------------------------------------------------------

    /** A person ({@code name} is {@code Family, Given}) or an organisation credited for the data. */
    public record CreatorModel(String name, String given, String family, String orcid, String affiliation) {
        /**
         * @param name {@code Family, Given}, or an organisation
         * @return a creator with only a name
         */
        public static CreatorModel named(String name) {
            return new CreatorModel(name, "", "", "", "");
        }
    }

    /** An identifier the data relates to (a source collection's DOI it {@code References}). */
    public record RelatedModel(String identifier, String kind, String relation) {
    }

    /** What a DOI record says of a published version (DataCite's kernel 4). */
    public record DoiMetadataModel(String title, List<CreatorModel> creators, String publisher, int year,
            String description, List<String> subjects, String license, List<String> funding,
            List<RelatedModel> related, String version, String resourceType, String size, List<String> formats) {
        /**
         * @param newTitle the title
         * @return this record with another title
         */
        public DoiMetadataModel withTitle(String newTitle) {
            return new DoiMetadataModel(newTitle, creators, publisher, year, description, subjects, license, funding,
                    related, version, resourceType, size, formats);
        }

        /**
         * @param newCreators the creators
         * @return this record with other creators
         */
        public DoiMetadataModel withCreators(List<CreatorModel> newCreators) {
            return new DoiMetadataModel(title, newCreators, publisher, year, description, subjects, license, funding,
                    related, version, resourceType, size, formats);
        }
    }

    /**
     * A published version and how far its DOI got: {@code doiState} is queued, findable, failed or none;
     * {@code status} is what a set shows ({@code DOI 10.x/y}).
     */
    public record PublicationModel(String setId, int version, String doi, String doiState, String status,
            String error, String service, String landingUrl, String doiUrl, int attempts, String title,
            List<String> creators, Integer publicationYear, String publisherKey, double time,
            DoiMetadataModel metadata) {
    }

    /** How a paper cites a published version. */
    public record CitationModel(String text, String bibtex, String availability) {
    }
}
