#include "core/campaign_loader.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>
#include <vector>

#include "core/csv_reader.hpp"
#include "core/json.hpp"

namespace dialer {

reject_log::reject_log(const std::filesystem::path& path)
    : file_(std::fopen(path.c_str(), "a")), owned_(true) {
  if (file_ == nullptr) {
    throw std::system_error(errno, std::generic_category(),
                            "cannot open reject log " + path.string());
  }
}

reject_log::reject_log() : file_(stdout), owned_(false) {}

reject_log::~reject_log() {
  if (owned_ && file_ != nullptr) {
    std::fclose(file_);
  } else if (file_ != nullptr) {
    std::fflush(file_);
  }
}

void reject_log::write(const std::string& campaign, const std::filesystem::path& file,
                       const ingest_reject& reject) {
  std::string line;
  line.reserve(128 + reject.detail.size());
  line.append("{\"campaign\":");
  append_json_string(line, campaign);
  line.append(",\"file\":");
  append_json_string(line, file.string());
  line.append(",\"line\":");
  line.append(std::to_string(reject.line));
  line.append(",\"task_id\":");
  append_json_string(line, reject.task_id);
  line.append(",\"reason\":");
  append_json_string(line, reject.reason);
  line.append(",\"detail\":");
  append_json_string(line, reject.detail);
  line.append("}\n");
  // stdio locks the stream per call, so concurrent writers never interleave a line.
  std::fwrite(line.data(), 1, line.size(), file_);
}

void reject_log::flush() { std::fflush(file_); }

namespace {

csv_options options_for(const config::campaign_settings& c) {
  csv_options o;
  o.delimiter = c.csv.delimiter;
  o.has_header = true;
  o.max_field_bytes = c.csv.max_field_bytes;
  return o;
}

struct column_map {
  int phone = -1;
  int task_id = -1;
  std::vector<std::pair<std::string, int>> variables;
};

column_map map_columns(const config::campaign_settings& c, const csv_reader& reader) {
  column_map m;
  std::string missing;
  const auto need = [&](const std::string& name) {
    const int i = reader.column(name);
    if (i < 0) {
      missing += missing.empty() ? "\"" + name + "\"" : ", \"" + name + "\"";
    }
    return i;
  };
  m.phone = need(c.csv.phone_column);
  m.task_id = need(c.csv.task_id_column);
  for (const auto& v : c.variable_columns) {
    m.variables.emplace_back(v, need(v));
  }
  if (!missing.empty()) {
    std::string have;
    for (const auto& h : reader.header()) {
      have += have.empty() ? h : ", " + h;
    }
    throw std::runtime_error(c.csv.path.string() + ": campaign " + c.id + " maps column(s) " +
                             missing + " that the header lacks (header: " + have + ")");
  }
  return m;
}

std::string trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) {
    return {};
  }
  const auto e = s.find_last_not_of(" \t");
  return std::string(s.substr(b, e - b + 1));
}

constexpr std::size_t max_task_id_bytes = 200;

}  // namespace

void check_campaign_input(const config::campaign_settings& campaign) {
  try {
    csv_reader reader(campaign.csv.path, options_for(campaign));
    (void)map_columns(campaign, reader);
  } catch (const std::system_error& e) {
    throw std::runtime_error(campaign.csv.path.string() + ": campaign " + campaign.id +
                             ": cannot read the CSV: " + e.code().message());
  }
}

std::string file_fingerprint(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return path.string() + "|missing";
  }
  const long long mtime_ns = static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL +
                             st.st_mtim.tv_nsec;
  return path.string() + "|" + std::to_string(static_cast<long long>(st.st_size)) + "|" +
         std::to_string(mtime_ns);
}

ingest_totals ingest_campaign(const config::campaign_settings& c, state_store& store,
                              const phone_normaliser& phones, reject_log& rejects,
                              const ingest_options& options) {
  ingest_totals totals;
  const std::string fingerprint = file_fingerprint(c.csv.path);
  if (!options.force && store.ingest_complete(c.id, fingerprint)) {
    totals.skipped = true;
    return totals;
  }
  csv_reader reader(c.csv.path, options_for(c));
  const column_map columns = map_columns(c, reader);

  std::vector<ingest_row> rows;
  std::vector<ingest_reject> row_rejects;
  rows.reserve(options.batch_rows);
  string_pairs variables;
  variables.reserve(columns.variables.size());

  const auto flush_batch = [&] {
    if (rows.empty() && row_rejects.empty()) {
      return;
    }
    const ingest_result r = store.ingest(c.id, rows, row_rejects, c.dedupe_phone);
    totals.stored.pending += r.pending;
    totals.stored.duplicate_phone += r.duplicate_phone;
    totals.stored.duplicate_task_id += r.duplicate_task_id;
    totals.stored.already_known += r.already_known;
    totals.stored.rejects += r.rejects;
    rows.clear();
    row_rejects.clear();
    if (options.on_batch) {
      options.on_batch(r);
    }
  };
  const auto add_reject = [&](ingest_reject r) {
    ++totals.rejected_by_reason[r.reason];
    rejects.write(c.id, c.csv.path, r);
    row_rejects.push_back(std::move(r));
  };

  csv_record record;
  while (reader.next(record)) {
    ++totals.rows_read;
    if (!record.reject.empty()) {
      add_reject({record.line, "", "", record.reject, record.reject_detail, false});
    } else {
      std::string task_id = trim(record.fields[columns.task_id]);
      const std::string_view raw_phone = record.fields[columns.phone];
      if (task_id.empty()) {
        add_reject({record.line, "", std::string(raw_phone), "missing_task_id",
                    "column \"" + c.csv.task_id_column + "\" is empty", false});
      } else if (task_id.size() > max_task_id_bytes) {
        add_reject({record.line, "", std::string(raw_phone), "task_id_too_long",
                    "task id is longer than 200 bytes", false});
      } else {
        auto phone = phones.normalise(raw_phone, c.csv.default_region);
        if (!phone) {
          add_reject({record.line, task_id, std::string(raw_phone), phone.error().reason,
                      phone.error().detail, false});
        } else {
          variables.clear();
          for (const auto& [name, index] : columns.variables) {
            variables.emplace_back(name, std::string(record.fields[index]));
          }
          rows.push_back({record.line, task_id, std::move(phone).value(),
                          build_variables_json(task_id, c.id, variables, c.static_variables)});
        }
      }
    }
    if (rows.size() + row_rejects.size() >= options.batch_rows) {
      flush_batch();
      if (options.stop != nullptr && options.stop->load()) {
        return totals;
      }
    }
  }
  flush_batch();
  rejects.flush();
  store.finish_ingest(c.id, fingerprint, totals.rows_read);
  return totals;
}

}  // namespace dialer
