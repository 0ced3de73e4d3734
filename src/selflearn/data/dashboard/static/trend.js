// Draws the trend figure the page carries as JSON (built server-side with plotly's Python API).
const figure = JSON.parse(document.getElementById("trend-data").textContent);
Plotly.newPlot("trend", figure.data, figure.layout, {responsive: true, displaylogo: false});
