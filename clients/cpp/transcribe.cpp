// Transcribe an audio file with a SenseVoice server: POST /v1/audio/transcriptions (response_format=text)
// through libcurl's MIME API, print the transcript.
//
//   transcribe FILE [URL]        URL default http://127.0.0.1:8000; API key from $SENSEVOICE_API_KEY
#include <curl/curl.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>

namespace {

size_t append(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

void add_field(curl_mime* form, const char* name, const char* value) {
  curl_mimepart* part = curl_mime_addpart(form);
  curl_mime_name(part, name);
  curl_mime_data(part, value, CURL_ZERO_TERMINATED);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::cerr << "usage: " << argv[0] << " FILE [URL]   (API key from $SENSEVOICE_API_KEY)\n";
    return 2;
  }
  const std::string path = argv[1];
  if (!std::ifstream(path, std::ios::binary)) {
    std::cerr << "cannot read " << path << "\n";
    return 2;
  }
  std::string url = argc > 2 ? argv[2] : "http://127.0.0.1:8000";
  while (!url.empty() && url.back() == '/') url.pop_back();
  url += "/v1/audio/transcriptions";

  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURL* curl = curl_easy_init();
  curl_mime* form = curl_mime_init(curl);
  curl_mimepart* file = curl_mime_addpart(form);
  curl_mime_name(file, "file");
  curl_mime_filedata(file, path.c_str());  // also sets the part's filename
  add_field(form, "model", "sensevoice-small");
  add_field(form, "response_format", "text");

  curl_slist* headers = nullptr;
  if (const char* key = std::getenv("SENSEVOICE_API_KEY"); key != nullptr && *key != '\0') {
    headers = curl_slist_append(headers, ("Authorization: Bearer " + std::string(key)).c_str());
  }
  std::string body;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_MIMEPOST, form);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  const CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);

  int exit_code = 0;
  if (rc != CURLE_OK) {
    std::cerr << "request to " << url << " failed: " << curl_easy_strerror(rc) << "\n";
    exit_code = 1;
  } else if (status != 200) {
    std::cerr << "HTTP " << status << ": " << body << "\n";
    exit_code = 1;
  } else {
    std::cout << body;  // the text format ends with a newline
  }
  curl_slist_free_all(headers);
  curl_mime_free(form);
  curl_easy_cleanup(curl);
  curl_global_cleanup();
  return exit_code;
}
